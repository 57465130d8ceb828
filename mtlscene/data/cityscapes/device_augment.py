"""The training augmentation and target encoding on the device, batched, after the transfer.

With ``data.augment_on_device: true`` the loader workers only read each frame (from the
prepared cache or its PNGs) and draw its augmentation parameters; they send the raw frame
(uint8 image, raw labelIds, instanceIds and disparity PNG values) with its
`AugmentDraw` as a row of numbers. The data module's
``on_after_batch_transfer`` hook (as torchgeo does it) then runs `DeviceAugmentation`
on the whole batch where the model is: random scale, flip, zero-padded crop and colour
jitter, then the targets (trainIds, disparity, centroid vectors).

It reproduces the host path (`JointAugmentation`, OpenCV
through albumentations) for the same draw:

- labels, instance ids and disparity are resampled by nearest neighbour with OpenCV's
  ``INTER_NEAREST`` source indices (``floor(x * src / dst)`` in float64), so the targets
  are identical;
- the image is resampled bilinearly with OpenCV's ``INTER_LINEAR`` coordinates
  (half-pixel centres, edges clamped) and 11-bit weights, then rounded to 8 bits like
  OpenCV's fixed-point result: equal within one grey level at most pixels;
- the colour jitter repeats albumentations' 8-bit arithmetic (brightness and contrast
  truncate, saturation rounds, the grey image is OpenCV's 15-bit RGB2GRAY);
- disparity is multiplied by the horizontal scale (disparity is inversely proportional to
  depth, and a frame scaled by ``s`` looks ``s`` times closer), ``depth_scale`` with it;
- centroid vectors are computed after the geometry, on the crop, from the moved instance
  ids, so they are rescaled and their x component mirrored with the frame (per-instance
  sums in float64, exactly as `instance_offsets` does);
- padding is void label, no instance and invalid disparity.

Nothing here synchronises the device with the host: every index and weight is computed
from the draws on the device, and the per-instance sums use a fixed-size table (instance
ids are 16-bit in CityScapes files and in the prepared cache).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtlscene.data.cityscapes.augment_draw import CONTRAST, SATURATION, AugmentDraw
from mtlscene.data.cityscapes.encoding import INSTANCE_ID_OFFSET
from mtlscene.data.cityscapes.labels import label_id_lut

RAW_KEYS: tuple[str, ...] = ("raw_image", "raw_targets", "augment", "resize_scale")
"""Keys of a batch the workers sent for the device to finish (``camera_scale`` optional)."""

_ID_BINS = 1 << 16  # instance ids are 16-bit: one table slot per id and sample, no sync
_COEF_SCALE = 2048.0  # OpenCV's INTER_RESIZE_COEF_SCALE: bilinear weights in 11 bits
_CONTIGUOUS = torch.contiguous_format
_GRAY = (9798.0, 19235.0, 3735.0)  # OpenCV's 8-bit RGB2GRAY weights (sum 2**15)


class DeviceAugmentation:
    """Random scale, flip, crop and colour jitter of a whole batch, and its targets.

    Args:
        crop_size: (height, width) of the output.
        scale_range: (min, max) random scale factor, or None for no scaling.
        hflip_prob: probability of a horizontal flip.
        color_jitter: strength of the brightness/contrast/saturation jitter (0 disables).
        label_set: "trainid" or "category": the semantic targets' encoding.
    """

    def __init__(
        self,
        crop_size: Sequence[int],
        scale_range: Sequence[float] | None = (0.75, 1.25),
        hflip_prob: float = 0.5,
        color_jitter: float = 0.2,
        label_set: str = "trainid",
    ) -> None:
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.scale_range = None if scale_range is None else tuple(float(v) for v in scale_range)
        self.hflip_prob = float(hflip_prob)
        self.color_jitter = float(color_jitter)
        self._lut = torch.from_numpy(label_id_lut(label_set).astype(np.int64))
        self._luts: dict[torch.device, torch.Tensor] = {}

    def draw(self, rng: np.random.Generator, shape: Sequence[int]) -> AugmentDraw:
        """One sample's parameters for a ``shape`` (height, width) frame."""
        return AugmentDraw.sample(
            rng, shape, self.crop_size, self.scale_range, self.hflip_prob, self.color_jitter
        )

    def __call__(self, batch: dict) -> dict:
        """Turn a raw batch (the workers' `RAW_KEYS`) into a training batch.

        Args:
            batch: ``raw_image`` uint8 (B, H, W, 3); ``raw_targets`` int32 (B, 3, H, W):
                labelIds, instanceIds and disparity PNG values; ``augment`` float64
                (B, 13): `AugmentDraw.vector` rows; ``resize_scale`` float64 (B,):
                working width over source width; ``camera_scale`` float64 (B,)
                (``baseline * fx``, optional); ``name``.

        Returns:
            The keys and dtypes the host path gives: ``image``, ``semantic``,
            ``instance_offset``, ``instance_mask``, ``instance_ids``, ``disparity``,
            ``disparity_mask``, ``name`` and ``depth_scale`` (where cameras were sent).
        """
        raw = batch["raw_image"]
        params = batch["augment"]
        device = raw.device
        batch_size, height, width = raw.shape[:3]
        scaled_h, scaled_w = params[:, 0], params[:, 1]
        rows = _positions(params[:, 5] - params[:, 3], self.crop_size[0], device)
        cols = _positions(params[:, 6] - params[:, 4], self.crop_size[1], device)
        inside = ((rows >= 0) & (rows < scaled_h[:, None]))[:, :, None] & (
            (cols >= 0) & (cols < scaled_w[:, None])
        )[:, None, :]
        # The host flips the scaled frame: its column c is column w' - 1 - c unflipped.
        cols = torch.where(params[:, 2:3] > 0.5, scaled_w[:, None] - 1 - cols, cols)

        # Targets: one gather of all three raw channels at OpenCV's nearest pixels.
        source = _flat_index(
            _nearest_index(rows, scaled_h, height), _nearest_index(cols, scaled_w, width), width
        )
        flat = batch["raw_targets"].reshape(batch_size, 3, height * width)
        picked = flat.gather(2, source[:, None, :].expand(-1, 3, -1))
        targets = picked.view(batch_size, 3, *self.crop_size) * inside[:, None]
        image = _bilinear(raw, rows, cols, scaled_h, scaled_w) * inside[:, None]
        if self.color_jitter > 0:
            image = _jitter(image, params[:, 7:10], params[:, 10:13].long())

        label_ids, instance_ids, raw_disparity = targets.long().unbind(1)
        # The same scale as the host: working/source width times scaled/working width.
        scale = batch["resize_scale"] * (scaled_w / width)
        valid = raw_disparity > 0
        disparity = (raw_disparity.float() - 1.0) / 256.0 * valid
        offsets, instance_mask = _instance_offsets(instance_ids)
        out = {
            "image": image / 255.0,
            "semantic": self._lut_on(device)[label_ids.clamp(0, 255)],
            "instance_offset": offsets,
            "instance_mask": instance_mask,
            "instance_ids": instance_ids,
            "disparity": disparity * scale.float()[:, None, None] * valid,
            "disparity_mask": valid,
            "name": batch["name"],
        }
        if "camera_scale" in batch:
            out["depth_scale"] = (batch["camera_scale"] * scale).float()
        return out

    def _lut_on(self, device: torch.device) -> torch.Tensor:
        if device not in self._luts:
            self._luts[device] = self._lut.to(device)
        return self._luts[device]


def _jitter(image: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """albumentations' ColorJitter of (B, 3, h, w) float 8-bit values, per-sample order.

    Brightness and contrast are 256-entry lookup tables per sample, as albumentations builds
    them (float32, truncated to 8 bits); saturation blends with OpenCV's grey image.
    """
    batch = image.shape[0]
    view = (batch, 1, 1, 1)
    levels = torch.arange(256, dtype=torch.float32, device=image.device)
    for step in range(3):
        op = order[:, step : step + 1]
        factor = factors.gather(1, op)  # (B, 1) float64
        gray = _gray(image)
        # Contrast blends with the crop's mean grey level (float64, as numpy's mean).
        mean = gray.double().mean(dim=(1, 2, 3))[:, None]
        offset = (mean * (1.0 - factors[:, CONTRAST : CONTRAST + 1])).float()
        scaled = levels * factor.float()
        table = torch.where(op == CONTRAST, scaled + offset, scaled).clamp(0, 255).floor()
        looked_up = table.gather(1, image.long().view(batch, -1)).view_as(image)
        # cv2.addWeighted: one float32 fused multiply-add (emulated in float64, where the
        # product is exact) with the grey image's float32 product, rounded half to even.
        weight = (1.0 - factor).float().view(view)
        blend = image.double() * factor.float().double().view(view) + (gray * weight).double()
        saturated = blend.float().round().clamp(0, 255)
        image = torch.where((op == SATURATION).view(view), saturated, looked_up)
    return image


def _positions(start: torch.Tensor, length: int, device: torch.device) -> torch.Tensor:
    """(B, length) positions in the scaled frame of the crop's pixels (negative: padding)."""
    return start.round().long()[:, None] + torch.arange(length, device=device)


def _nearest_index(position: torch.Tensor, scaled: torch.Tensor, size: int) -> torch.Tensor:
    """OpenCV INTER_NEAREST: source index ``floor(x * (1 / (dst / src)))`` in float64."""
    inverse = 1.0 / (scaled.double() / size)
    index = (position.double() * inverse[:, None]).floor().long()
    return index.clamp(0, size - 1)


def _linear_index(
    position: torch.Tensor, scaled: torch.Tensor, size: int, vertical: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenCV INTER_LINEAR source indices and 11-bit integer weights along one axis.

    Returns:
        (first index, second index, first weight, second weight), each (B, length); the
        weights are OpenCV's ``saturate_cast<short>(w * 2048)``.
    """
    inverse = 1.0 / (scaled.double() / size)
    source = ((position.double() + 0.5) * inverse[:, None] - 0.5).float()
    first = source.floor()
    fraction = source - first
    first = first.long()
    if not vertical:
        # Beyond the left or right edge OpenCV repeats the edge pixel with full weight;
        # above and below it keeps both weights on the (clamped, same) edge row.
        outside = (first < 0) | (first >= size - 1)
        fraction = torch.where(outside, torch.zeros_like(fraction), fraction)
    second = (first + 1).clamp(0, size - 1)
    first = first.clamp(0, size - 1)
    weights = (((1.0 - fraction) * _COEF_SCALE).round(), (fraction * _COEF_SCALE).round())
    return first, second, weights[0].int(), weights[1].int()


def _flat_index(rows: torch.Tensor, cols: torch.Tensor, width: int) -> torch.Tensor:
    """(B, h * w) indices into a flattened (H * W) frame of rows (B, h) x cols (B, w)."""
    return (rows[:, :, None] * width + cols[:, None, :]).flatten(1)


def _bilinear(
    image: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    scaled_h: torch.Tensor,
    scaled_w: torch.Tensor,
) -> torch.Tensor:
    """uint8 (B, H, W, 3) resampled at the crop's positions: float (B, 3, h, w), 8-bit values.

    OpenCV's integer arithmetic: a horizontal pass with 11-bit weights, then a vertical one
    whose rounding is that of its SIMD loop (``((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >>
    16) + 2 >> 2``), which produces nearly every pixel.
    """
    batch, height, width, _ = image.shape
    top, bottom, top_weight, bottom_weight = _linear_index(rows, scaled_h, height, True)
    left, right, left_weight, right_weight = _linear_index(cols, scaled_w, width, False)
    # A pixel padded to 4 bytes is one int32: one gather moves all its channels.
    pixels = torch.nn.functional.pad(image, (0, 1)).view(torch.int32).view(batch, -1)
    shape = (batch, rows.shape[1], cols.shape[1], 4)

    def corner(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        picked = pixels.gather(1, _flat_index(row, col, width)).view(torch.uint8).view(shape)
        # Channels first from here: broadcasting the per-row and per-column weights then
        # runs along contiguous rows.
        return picked.permute(0, 3, 1, 2)[:, :3].to(torch.int32, memory_format=_CONTIGUOUS)

    def horizontal(row: torch.Tensor) -> torch.Tensor:
        total = corner(row, left) * left_weight[:, None, None, :]
        return (total + corner(row, right) * right_weight[:, None, None, :]) >> 4

    upper = (horizontal(top) * top_weight[:, None, :, None]) >> 16
    lower = (horizontal(bottom) * bottom_weight[:, None, :, None]) >> 16
    return ((upper + lower + 2) >> 2).clamp(0, 255).float()


def _gray(image: torch.Tensor) -> torch.Tensor:
    """OpenCV's 8-bit RGB2GRAY of (B, 3, H, W) integer values, as (B, 1, H, W).

    15-bit weights, rounded; every sum is an integer below 2**24, so float32 is exact.
    """
    red, green, blue = image[:, 0:1], image[:, 1:2], image[:, 2:3]
    weighted = red * _GRAY[0] + green * _GRAY[1] + blue * _GRAY[2] + 16384.0
    return (weighted / 32768.0).floor()


def _instance_offsets(instance_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched `instance_offsets`: (B, 2, H, W) and (B, H, W)."""
    batch, height, width = instance_ids.shape
    device = instance_ids.device
    mask = instance_ids >= INSTANCE_ID_OFFSET
    sample = torch.arange(batch, device=device)[:, None, None]
    # Pixels outside instances all go to one spare slot at the end of the table.
    slot = torch.where(
        mask, sample * _ID_BINS + instance_ids - INSTANCE_ID_OFFSET, batch * _ID_BINS
    )
    slot = slot.reshape(-1)
    ys = torch.arange(height, device=device, dtype=torch.float64)[:, None].expand(height, width)
    xs = torch.arange(width, device=device, dtype=torch.float64)[None, :].expand(height, width)
    coords = torch.stack([torch.ones_like(ys), ys, xs], -1).expand(batch, height, width, 3)
    sums = torch.zeros(batch * _ID_BINS + 1, 3, dtype=torch.float64, device=device)
    sums.index_add_(0, slot, coords.reshape(-1, 3))
    per_pixel = sums[slot].view(batch, height, width, 3)
    # Integer coordinate sums are exact in float64, so this equals the host's centroids.
    centroid = per_pixel[..., 1:] / per_pixel[..., :1].clamp(min=1)
    offsets = torch.where(mask[..., None], (centroid - coords[..., 1:]).float(), 0.0)
    offsets = offsets.permute(0, 3, 1, 2)
    return offsets.contiguous(), mask
