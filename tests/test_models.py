import pytest
import torch
from torchvision.models import resnet18

from mtlscene.models import DeepLabEncoder, DilatedResNet


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_output_stride_by_dilation_for_every_block_type(name, output_stride):
    net = DilatedResNet(name, output_stride).eval()
    with torch.no_grad():
        features = net(torch.randn(1, 3, 64, 128))
    assert features.shape[-2:] == (64 // output_stride, 128 // output_stride)
    assert features.shape[1] == net.out_channels


def test_resnet101_is_available():
    assert DilatedResNet("resnet101", 8).out_channels == 2048


def test_encoder_outputs_aspp_features():
    encoder = DeepLabEncoder("resnet18", 16, aspp_channels=32).eval()
    with torch.no_grad():
        assert encoder(torch.rand(2, 3, 64, 64)).shape == (2, 32, 4, 4)


def test_weights_load_from_a_local_file(tmp_path):
    reference = resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    net = DilatedResNet("resnet18", 8, weights_path=path)
    assert torch.equal(net.stem[0].weight, reference.conv1.weight)
    assert torch.equal(net.layers[3][1].conv2.weight, reference.layer4[1].conv2.weight)


def test_bad_backbone_options_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights_path"):
        DilatedResNet("resnet18", 8, weights_path=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="output_stride"):
        DilatedResNet("resnet18", 4)
    with pytest.raises(ValueError, match="unknown backbone"):
        DilatedResNet("vgg16", 8)
    wrong = tmp_path / "r50.pth"
    torch.save(DilatedResNet("resnet50", 32).state_dict(), wrong)
    with pytest.raises(ValueError, match="do not match"):
        DilatedResNet("resnet18", 8, weights_path=wrong)
