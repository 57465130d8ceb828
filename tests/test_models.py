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


def _no_download(*args, **kwargs):
    raise AssertionError("a test tried to download weights")


def test_imagenet_weights_load_offline_from_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    reference = resnet18(weights=None)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    encoder = DeepLabEncoder("resnet18", 8, aspp_channels=8, weights="IMAGENET1K_V1")
    net = encoder.resnet
    assert torch.equal(net.stem[0].weight, reference.conv1.weight)
    assert torch.equal(net.stem[1].running_mean, reference.bn1.running_mean)
    assert torch.equal(net.layers[3][1].conv2.weight, reference.layer4[1].conv2.weight)
    # The full enum name and DEFAULT resolve to the same cached file.
    for name in ("ResNet18_Weights.IMAGENET1K_V1", "DEFAULT"):
        other = DilatedResNet("resnet18", 8, weights=name)
        assert torch.equal(other.stem[0].weight, reference.conv1.weight)


def test_missing_imagenet_weights_name_the_file_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    url = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    # Not allowed to download: fails before any network access.
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    with pytest.raises(FileNotFoundError) as error:
        DilatedResNet("resnet18", 8, weights="IMAGENET1K_V1", download_weights=False)
    assert str(expected) in str(error.value) and url in str(error.value)
    # Allowed but offline: the failed download is reported with the same fix.
    attempts = []

    def offline(source, destination, **kwargs):
        attempts.append((source, destination))
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError, match="network is unreachable") as error:
        DilatedResNet("resnet18", 8, weights="IMAGENET1K_V1")
    assert str(expected) in str(error.value) and url in str(error.value)
    assert attempts == [(url, str(expected))]


def test_online_imagenet_weights_download_into_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    reference = resnet18(weights=None)

    def fake_download(source, destination, hash_prefix=None, **kwargs):
        assert hash_prefix == "f37072fd"  # the file's checksum is verified
        torch.save(reference.state_dict(), destination)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    net = DilatedResNet("resnet18", 8, weights="IMAGENET1K_V1")
    assert torch.equal(net.stem[0].weight, reference.conv1.weight)
    assert (tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth").is_file()


def test_bad_imagenet_weights_options_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        DilatedResNet("resnet18", 8, weights="IMAGENET21K")
    with pytest.raises(ValueError, match="not ImageNet weights of resnet18"):
        DilatedResNet("resnet18", 8, weights="ResNet50_Weights.IMAGENET1K_V2")
    with pytest.raises(ValueError, match="only one of"):
        DilatedResNet("resnet18", 8, weights_path=tmp_path / "x.pth", weights="DEFAULT")


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
