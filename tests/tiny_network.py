"""Parameters and forward FLOPs of the tests' tiny network (tests/conf/tiny.yaml), by formula.

Worked out from the layer shapes, not by asking the modules, so a count that is off (a
layer counted twice, a head's tail shared, FLOPs halved or counted for a whole batch) shows
against them: ResNet-18 at output stride 16, a 16-channel ASPP, and per task a decoder with
one 8-channel 3x3 layer.
"""

from __future__ import annotations

from collections.abc import Sequence


def conv(c_in: int, c_out: int, kernel: int, bias: bool = False) -> int:
    """Parameters of a convolution: c_in * c_out * k^2 weights, plus c_out biases."""
    return c_in * c_out * kernel * kernel + (c_out if bias else 0)


def norm(channels: int) -> int:
    """Parameters of a BatchNorm or GroupNorm: a scale and a shift per channel."""
    return 2 * channels


# torchvision documents ResNet-18 at 11,689,512 parameters; its fc layer (512 -> 1000) is
# not part of the trunk. Dilation (output stride 16) changes no shape.
RESNET18_TRUNK = 11_689_512 - conv(512, 1000, 1, bias=True)
# ResNet-18's layer4: a strided block with a 1x1 downsample, then a plain block.
LAYER4 = (
    conv(256, 512, 3) + norm(512) + conv(512, 512, 3) + norm(512) + conv(256, 512, 1) + norm(512)
) + 2 * (conv(512, 512, 3) + norm(512))
# ASPP(512 -> 16): a 1x1 branch, three dilated 3x3 branches, image pooling (1x1 conv and
# GroupNorm), and the 1x1 projection of the five concatenated branches.
ASPP = (
    conv(512, 16, 1)
    + norm(16)
    + 3 * (conv(512, 16, 3) + norm(16))
    + conv(512, 16, 1)
    + norm(16)
    + conv(5 * 16, 16, 1)
    + norm(16)
)
# Output channels of each head: 19 class logits, a 2-D offset, one disparity.
HEAD_CHANNELS = {"semantic": 19, "instance": 2, "depth": 1}


def decoder(out_channels: int) -> int:
    """A decoder of tiny.yaml: 3x3 conv (16 -> 8) and BatchNorm, then a 1x1 projection."""
    return conv(16, 8, 3) + norm(8) + conv(8, out_channels, 1, bias=True)


def tiny_parameters(
    branch_point: str = "aspp", tasks: Sequence[str] = tuple(HEAD_CHANNELS)
) -> tuple[int, int]:
    """(all parameters, shared parameters) of the tiny network split at ``branch_point``,
    with a head for each of ``tasks``. Each head owns a copy of the stages past the branch
    point (its tail)."""
    tail = {"aspp": 0, "layer4": ASPP, "layer3": LAYER4 + ASPP}[branch_point]
    shared = RESNET18_TRUNK + ASPP - tail
    heads = sum(decoder(HEAD_CHANNELS[task]) + tail for task in tasks)
    return shared + heads, shared


def conv_flops(c_in: int, c_out: int, kernel: int, pixels: int) -> int:
    """Forward FLOPs of a convolution: a multiply-add (2 FLOPs) per weight per output pixel."""
    return 2 * c_in * c_out * kernel * kernel * pixels


def _stage_flops(c_in: int, c_out: int, pixels: int) -> int:
    """A two-block ResNet-18 stage at its output size; a 1x1 downsample when widening."""
    first = conv_flops(c_in, c_out, 3, pixels) + conv_flops(c_out, c_out, 3, pixels)
    if c_in != c_out:
        first += conv_flops(c_in, c_out, 1, pixels)
    return first + 2 * conv_flops(c_out, c_out, 3, pixels)


def tiny_flops(
    branch_point: str = "aspp",
    tasks: Sequence[str] = tuple(HEAD_CHANNELS),
    height: int = 32,
    width: int = 64,
) -> int:
    """FLOPs of one forward pass of the tiny network (a head per task) on one image of
    height x width (convolutions only: normalisation, pooling and upsampling are not
    multiply-adds)."""
    pixels = height * width
    features = pixels // 16**2  # output stride 16: layer3, layer4, ASPP and the decoders
    resnet = (
        conv_flops(3, 64, 7, pixels // 2**2)  # the stem's stride-2 7x7 conv
        + _stage_flops(64, 64, pixels // 4**2)  # after the stem's max pool
        + _stage_flops(64, 128, pixels // 8**2)
        + _stage_flops(128, 256, features)
    )
    layer4 = _stage_flops(256, 512, features)  # dilated instead of strided
    aspp = (
        conv_flops(512, 16, 1, features)
        + 3 * conv_flops(512, 16, 3, features)
        + conv_flops(512, 16, 1, 1)  # image pooling: one pixel
        + conv_flops(5 * 16, 16, 1, features)
    )
    tail = {"aspp": 0, "layer4": aspp, "layer3": layer4 + aspp}[branch_point]
    decoders = sum(
        conv_flops(16, 8, 3, features) + conv_flops(8, HEAD_CHANNELS[task], 1, features) + tail
        for task in tasks
    )
    return resnet + layer4 + aspp - tail + decoders
