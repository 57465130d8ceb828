import pytest
import torch
from torchvision.models import resnet18, resnet50

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


def _conv_geometry(layer: torch.nn.Module) -> list[tuple]:
    return [
        (name, m.stride, m.dilation, m.padding)
        for name, m in layer.named_modules()
        if isinstance(m, torch.nn.Conv2d)
    ]


@pytest.mark.parametrize(
    ("output_stride", "dilate"), [(16, [False, False, True]), (8, [False, True, True])]
)
def test_dilated_stages_match_torchvision(output_stride, dilate):
    """Each dilated stage's first block keeps the previous dilation, as in torchvision."""
    ours = DilatedResNet("resnet50", output_stride)
    reference = resnet50(weights=None, replace_stride_with_dilation=dilate)
    for index, stage in enumerate(
        (reference.layer1, reference.layer2, reference.layer3, reference.layer4)
    ):
        assert _conv_geometry(ours.layers[index]) == _conv_geometry(stage)


def test_basic_block_stage_starts_with_the_previous_dilation():
    layer4 = DilatedResNet("resnet18", 16).layers[3]
    assert layer4[0].conv1.dilation == (1, 1) and layer4[0].conv2.dilation == (1, 1)
    assert layer4[1].conv1.dilation == (2, 2) and layer4[1].conv2.padding == (2, 2)
