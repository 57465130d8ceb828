"""Colour images for figures: official colours, black for invalid pixels, complete panels."""

import numpy as np
import pytest
import torch

from mtlscene.data.conventions import IGNORE_INDEX
from mtlscene.viz.colorize import (
    colorize_disparity,
    colorize_semantic,
    draw_offsets,
    make_panel,
    overlay_instances,
    to_uint8_image,
)


def test_colorize_semantic_uses_official_colours_and_black_for_ignore():
    train_ids = np.array([[0, 13, IGNORE_INDEX], [10, 11, 99]])
    rgb = colorize_semantic(train_ids)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (128, 64, 128)  # road
    assert tuple(rgb[0, 1]) == (0, 0, 142)  # car
    assert tuple(rgb[1, 0]) == (70, 130, 180)  # sky
    assert tuple(rgb[1, 1]) == (220, 20, 60)  # person
    assert tuple(rgb[0, 2]) == (0, 0, 0) and tuple(rgb[1, 2]) == (0, 0, 0)


def test_colorize_semantic_accepts_tensors_and_categories():
    rgb = colorize_semantic(torch.tensor([[0, 6]]), label_set="category")
    assert rgb.shape == (1, 2, 3)
    assert tuple(rgb[0, 0]) == (128, 64, 128)  # "flat" is drawn in the colour of road


def test_colorize_disparity_blacks_out_invalid_pixels_and_orders_near_far():
    disparity = np.array([[0.0, 10.0, 20.0], [30.0, 40.0, np.nan]])
    valid = np.array([[True, True, True], [True, False, True]])
    rgb = colorize_disparity(disparity, valid, vmax=30.0)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[1, 1]) == (0, 0, 0)  # masked
    assert tuple(rgb[1, 2]) == (0, 0, 0)  # not finite
    brightness = rgb.astype(int).sum(axis=-1)
    assert brightness[0, 0] < brightness[0, 1] < brightness[0, 2] < brightness[1, 0]


def test_colorize_disparity_robust_vmax_ignores_an_outlier():
    disparity = np.tile(np.linspace(0.0, 10.0, 100), (2, 1))
    disparity[0, 0] = 1e6
    rgb = colorize_disparity(disparity)
    # Without the percentile, everything except the outlier would be near the dark bottom.
    assert rgb[1, -1].astype(int).sum() > 400


def test_overlay_instances_tints_instances_and_keeps_background():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    instances = np.zeros((12, 16), dtype=np.int64)
    instances[2:8, 2:8] = 26001
    instances[5:10, 9:15] = 26002
    result = overlay_instances(image, instances, alpha=0.5)
    assert result.shape == image.shape and result.dtype == np.uint8
    background = instances == 0
    np.testing.assert_array_equal(result[background], image[background])
    assert (result[~background] != image[~background]).any(axis=-1).all()
    # The two instances are drawn in different colours (compare their outlines).
    assert tuple(result[2, 2]) != tuple(result[5, 9])


def test_draw_offsets_hue_follows_direction_and_masked_is_black():
    offsets = np.zeros((2, 1, 3))
    offsets[:, 0, 0] = (0.0, 5.0)  # right
    offsets[:, 0, 1] = (0.0, -5.0)  # left
    rgb = draw_offsets(offsets, valid=np.array([[True, True, False]]), max_magnitude=5.0)
    assert rgb.shape == (1, 3, 3)
    assert tuple(rgb[0, 2]) == (0, 0, 0)
    assert tuple(rgb[0, 0]) != tuple(rgb[0, 1])
    assert rgb[0, 0].max() == 255 and rgb[0, 1].max() == 255  # full length, full brightness


def test_make_panel_contains_every_image_and_grows_with_the_count():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    images = [
        (f"image {i}", np.full((10, 20, 3), c, dtype=np.uint8)) for i, c in enumerate(colours)
    ]
    three = make_panel(images[:3], columns=3)
    four = make_panel(images, columns=3)
    assert three.dtype == np.uint8 and three.ndim == 3 and three.shape[2] == 3
    assert four.shape[0] > three.shape[0] and four.shape[1] == three.shape[1]
    for colour in colours:
        assert (four == colour).all(axis=-1).sum() == 10 * 20
    # Titles are drawn: the title strip above the first image is not plain white.
    assert (three[4:18, 4:24] != 255).any()


def test_make_panel_accepts_float_and_single_channel_images():
    panel = make_panel([("rgb", torch.rand(3, 8, 8)), ("depth", np.random.rand(8, 8))], columns=2)
    assert panel.shape[2] == 3 and panel.shape[1] >= 16


def test_to_uint8_image_converts_chw_float():
    image = torch.zeros(3, 2, 4)
    image[0] = 1.0
    image[2, 0, 0] = 2.0  # clipped
    result = to_uint8_image(image)
    assert result.shape == (2, 4, 3) and result.dtype == np.uint8
    assert tuple(result[0, 0]) == (255, 0, 255) and tuple(result[1, 1]) == (255, 0, 0)


def test_overlay_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="differ in size"):
        overlay_instances(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4), np.int64))
