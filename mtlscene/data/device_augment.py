"""The training augmentation and target encoding on the device, batched, after the transfer.

With ``data.augment_on_device: true`` the loader workers only read each frame (from the
prepared cache or its PNGs) and draw its augmentation parameters; they send the raw frame
(uint8 image, raw labelIds, instanceIds and disparity PNG values) with its
:class:`~mtlscene.data.augment_draw.AugmentDraw` as a row of numbers. The data module's
``on_after_batch_transfer`` hook (as torchgeo does it) then runs :class:`DeviceAugmentation`
on the whole batch where the model is: random scale, flip, zero-padded crop and colour
jitter, then the targets (trainIds, disparity, centroid vectors).

It reproduces the host path (:class:`~mtlscene.data.transforms.JointAugmentation`, OpenCV
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
  sums in float64, exactly as :func:`~mtlscene.data.encoding.instance_offsets` does);
- padding is void label, no instance and invalid disparity.

Nothing here synchronises the device with the host: every index and weight is computed
from the draws on the device, and the per-instance sums use a fixed-size table (instance
ids are 16-bit in CityScapes files and in the prepared cache).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtlscene.data.augment_draw import BRIGHTNESS, CONTRAST, AugmentDraw
from mtlscene.data.encoding import INSTANCE_ID_OFFSET
from mtlscene.data.labels import label_id_lut

RAW_KEYS: tuple[str, ...] = ("raw_image", "raw_targets", "augment", "resize_scale")
"""Keys of a batch the workers sent for the device to finish (``camera_scale`` optional)."""

_ID_BINS = 1 << 16  # instance ids are 16-bit: one table slot per id and sample, no sync
_COEF_SCALE = 2048.0  # OpenCV's INTER_RESIZE_COEF_SCALE: bilinear weights in 11 bits
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
        """Turn a raw batch (the workers' :data:`RAW_KEYS`) into a training batch.

        Args:
            batch: ``raw_image`` uint8 (B, H, W, 3); ``raw_targets`` int32 (B, 3, H, W):
                labelIds, instanceIds and disparity PNG values; ``augment`` float64
                (B, 13): :meth:`AugmentDraw.vector` rows; ``resize_scale`` float64 (B,):
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
        height, width = raw.shape[1:3]
        scaled_h, scaled_w = params[:, 0], params[:, 1]
        flip = params[:, 2] > 0.5
        rows = _positions(params[:, 5] - params[:, 3], self.crop_size[0], device)
        cols = _positions(params[:, 6] - params[:, 4], self.crop_size[1], device)
        inside = ((rows >= 0) & (rows < scaled_h[:, None]))[:, :, None] & (
            (cols >= 0) & (cols < scaled_w[:, None])
        )[:, None, :]
        # The host flips the scaled frame: column c of it is column w' - 1 - c before.
        cols = torch.where(flip[:, None], scaled_w[:, None] - 1 - cols, cols)

        targets = (
            _gather_nearest(
                batch["raw_targets"],
                _nearest_index(rows, scaled_h, height),
                _nearest_index(cols, scaled_w, width),
            )
            * inside[:, None]
        )
        image = _bilinear(raw, rows, cols, scaled_h, scaled_w) * inside[..., None]
        if self.color_jitter > 0:
            image = _jitter(image, params[:, 7:10], params[:, 10:13])

        label_ids, instance_ids, raw_disparity = targets.long().unbind(1)
        # The same scale as the host: working/source width times scaled/working width.
        scale = batch["resize_scale"] * (scaled_w / width)
        valid = raw_disparity > 0
        disparity = (raw_disparity.float() - 1.0) / 256.0 * valid
        offsets, instance_mask = _instance_offsets(instance_ids)
        out = {
            "image": (image.permute(0, 3, 1, 2) / 255.0).contiguous(),
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
    """albumentations' ColorJitter on 8-bit values (float tensors holding integers)."""
    batch = image.shape[0]
    view = (batch, 1, 1, 1)
    for step in range(3):
        op = order[:, step]
        factor = factors.gather(1, op[:, None].long()).float().view(view)
        gray = _gray(image)
        # Contrast blends with the mean grey level of the whole crop (float64, as numpy).
        mean = gray.double().mean(dim=(1, 2)).view(view)
        offset = (mean * (1.0 - factors[:, CONTRAST].view(view))).float()
        brightness = (image * factor).clamp(0, 255).floor()
        contrast = (image * factor + offset).clamp(0, 255).floor()
        # cv2.addWeighted: one float32 fused multiply-add (emulated in float64, where the
        # product is exact) of the grey image's float32 product, rounded half to even.
        weight = (1.0 - factors.gather(1, op[:, None].long())).float().view(view)
        blend = image.double() * factor.double() + (gray[..., None] * weight).double()
        saturation = blend.float().round().clamp(0, 255)
        image = torch.where(
            (op == BRIGHTNESS).view(view),
            brightness,
            torch.where((op == CONTRAST).view(view), contrast, saturation),
        )
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


def _gather_nearest(targets: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """targets (B, C, H, W) sampled at rows (B, h) and cols (B, w): (B, C, h, w)."""
    batch, channels, _, width = targets.shape
    picked = targets.gather(2, rows[:, None, :, None].expand(batch, channels, -1, width))
    return picked.gather(3, cols[:, None, None, :].expand(batch, channels, rows.shape[1], -1))


def _bilinear(
    image: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    scaled_h: torch.Tensor,
    scaled_w: torch.Tensor,
) -> torch.Tensor:
    """uint8 (B, H, W, 3) resampled at the crop's positions: float (B, h, w, 3), 8-bit values.

    OpenCV's integer arithmetic: a horizontal pass with 11-bit weights, then a vertical one
    whose rounding is that of its SIMD loop (``((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >>
    16) + 2 >> 2``), which produces nearly every pixel.
    """
    batch, height, width, channels = image.shape
    top, bottom, top_weight, bottom_weight = _linear_index(rows, scaled_h, height, vertical=True)
    left, right, left_weight, right_weight = _linear_index(cols, scaled_w, width, vertical=False)
    crop_w = cols.shape[1]

    def pick_cols(index: torch.Tensor) -> torch.Tensor:
        expanded = index[:, None, :, None].expand(batch, height, -1, channels)
        return image.gather(2, expanded).int()

    horizontal = (
        pick_cols(left) * left_weight[:, None, :, None]
        + pick_cols(right) * right_weight[:, None, :, None]
    ) >> 4

    def vertical(index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        expanded = index[:, :, None, None].expand(batch, -1, crop_w, channels)
        return (horizontal.gather(1, expanded) * weight[:, :, None, None]) >> 16

    total = vertical(top, top_weight) + vertical(bottom, bottom_weight)
    return ((total + 2) >> 2).clamp(0, 255).float()


def _gray(image: torch.Tensor) -> torch.Tensor:
    """OpenCV's 8-bit RGB2GRAY of (B, H, W, 3) integer values (15-bit weights, rounded)."""
    red, green, blue = image.unbind(-1)
    # Integers below 2**24: exact in float32.
    weighted = red * _GRAY[0] + green * _GRAY[1] + blue * _GRAY[2] + 16384.0
    return (weighted / 32768.0).floor()


def _instance_offsets(instance_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched :func:`~mtlscene.data.encoding.instance_offsets`: (B, 2, H, W) and (B, H, W)."""
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
