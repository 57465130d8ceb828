"""Pictures that explain themselves (issue 20): class legend, colour bars, ground truth beside
predictions, no empty cells, large tiles; the sigma plot says why weights start apart."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from mtlscene.callbacks.prediction_writer import PredictionWriter
from mtlscene.callbacks.uncertainty_tracker import weight_rules
from mtlscene.data.cityscapes.labels import palette
from mtlscene.viz.panels import (
    MIN_TILE_WIDTH,
    class_legend,
    high_percentile,
    titled_grid,
    with_colorbar,
)
from mtlscene.viz.weight_history import WEIGHT_NOTE, uncertainty_figure, weight_rule
from mtlscene.weighting import UncertaintyWeighting

H, W = 16, 32
ROAD, SKY, CAR = 0, 10, 13
PALETTE = palette("trainid")


def _colours(picture: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(int(c) for c in p) for p in picture.reshape(-1, 3)}


def _batch_and_outputs(with_truth: bool):
    semantic = torch.full((1, H, W), ROAD)
    semantic[:, : H // 2] = CAR
    disparity = torch.linspace(0, 8, W).repeat(1, H, 1)
    batch = {"image": torch.rand(1, 3, H, W), "name": ["frame"]}
    if with_truth:
        truth = torch.full((1, H, W), ROAD)
        truth[:, : H // 4] = SKY
        ids = torch.full((1, H, W), 7)
        ids[:, 4:8, 4:12] = 26001
        batch |= {
            "semantic": truth,
            "disparity": disparity * 0.5,
            "disparity_mask": torch.ones(1, H, W, dtype=torch.bool),
            "instance_ids": ids,
        }
    instance_map = torch.zeros(H, W, dtype=torch.long)
    instance_map[2:6, 2:10] = 1
    outputs = {
        "semantic": semantic,
        "depth": disparity,
        "instances": [{"instance_map": instance_map}],
    }
    return batch, outputs


def _write(tmp_path, with_truth: bool) -> PredictionWriter:
    writer = PredictionWriter(output_dir=str(tmp_path), benchmark=False)
    batch, outputs = _batch_and_outputs(with_truth)
    writer.write_image("frame", batch, outputs, 0)
    return writer


def test_panel_puts_ground_truth_beside_each_prediction_in_large_tiles(tmp_path):
    writer = _write(tmp_path, with_truth=True)
    image = np.zeros((H, W, 3), np.uint8)
    batch, outputs = _batch_and_outputs(True)
    writer.write_image("frame", batch, outputs, 0)
    tiles, strip = writer.panel_tiles(image, writer_pictures(writer, batch, outputs))
    titles = [title for title, _ in tiles]
    for task in ("semantic", "instances", "disparity [px]"):
        prediction = titles.index(f"{task}: prediction")
        assert titles[prediction + 1] == f"{task}: ground truth"
        assert prediction % 2 == 0  # the pair shares a row of two
    assert len(tiles) % 2 == 0  # every row full: no empty cell
    assert "classes" in titles or strip is not None  # the legend is somewhere
    assert all(tile.shape[1] >= MIN_TILE_WIDTH for _, tile in tiles)
    panel = np.asarray(Image.open(tmp_path / "pictures" / "frame_panel.png"))
    assert panel.shape[1] >= 2 * MIN_TILE_WIDTH
    # The legend shows the classes of prediction and truth in their CityScapes colours.
    colours = _colours(panel)
    for cls in (ROAD, SKY, CAR):
        assert tuple(int(c) for c in PALETTE[cls]) in colours


def writer_pictures(writer, batch, outputs):
    """The (suffix, title, picture) list write_image builds, captured through _panel."""
    captured = {}
    original = writer._panel
    writer._panel = lambda image, pictures: (
        captured.setdefault("p", pictures) and original(image, pictures)
    )
    writer.write_image("frame", batch, outputs, 0)
    writer._panel = original
    return captured["p"]


def test_depth_picture_has_a_colour_bar(tmp_path):
    _write(tmp_path, with_truth=False)
    depth = np.asarray(Image.open(tmp_path / "pictures" / "frame_depth.png").convert("RGB"))
    assert depth.shape[1] > MIN_TILE_WIDTH  # the enlarged map and, beside it, the bar
    bar = depth[:, MIN_TILE_WIDTH + 6 + 8]  # the middle of the bar's strip
    brightness = bar.astype(int).sum(axis=1)
    assert brightness[0] > brightness[-1] + 300  # magma: bright at the top (far values)


def test_panel_without_labels_has_no_empty_cell_and_a_legend(tmp_path):
    writer = _write(tmp_path, with_truth=False)
    batch, outputs = _batch_and_outputs(False)
    pictures = writer_pictures(writer, batch, outputs)
    tiles, strip = writer.panel_tiles(np.zeros((H, W, 3), np.uint8), pictures)
    assert len(tiles) % 2 == 0
    assert ("classes" in [t for t, _ in tiles]) != (strip is not None)


def test_legend_names_only_the_classes_present():
    legend = class_legend([ROAD, CAR])
    colours = _colours(legend)
    assert tuple(int(c) for c in PALETTE[ROAD]) in colours
    assert tuple(int(c) for c in PALETTE[CAR]) in colours
    assert tuple(int(c) for c in PALETTE[SKY]) not in colours


def test_grid_fills_its_last_row_with_the_legend():
    tile = np.zeros((8, 8, 3), np.uint8)
    with_cell = titled_grid([("a", tile)] * 3, legend=[ROAD])
    with_strip = titled_grid([("a", tile)] * 4, legend=[ROAD])
    assert with_cell.shape[0] < with_strip.shape[0]  # 2 rows vs 2 rows + a strip


def test_sigma_plot_says_why_semantic_and_regression_weights_start_apart():
    weighting = UncertaintyWeighting()
    weighting.bind({"semantic": "boltzmann", "depth": "gaussian"})
    rules = weight_rules(weighting)
    assert rules == {"semantic": "1/σ²", "depth": "1/(2σ²)"}
    assert weight_rule(1.0, 0.5) == "1/σ"
    history = [
        {"step": 0, "task": "semantic", "sigma": 1.0, "weight": 1.0},
        {"step": 0, "task": "depth", "sigma": 1.0, "weight": 0.5},
    ]
    figure = uncertainty_figure(history, rules)
    texts = [t.get_text() for ax in figure.axes for t in ax.get_legend().get_texts()]
    assert "semantic: w = 1/σ²" in texts and "depth: w = 1/(2σ²)" in texts
    assert figure._supxlabel.get_text() == WEIGHT_NOTE


def test_one_colour_bar_function_scales_to_the_99th_percentile_by_default():
    values = np.linspace(0, 1, 32 * 64).reshape(32, 64)
    values[0, 0] = 1e6  # one outlier saturates instead of washing the map out
    assert high_percentile(values) < 1.01
    default = with_colorbar(values, min_width=0)
    explicit = with_colorbar(values, vmax=high_percentile(values), min_width=0)
    np.testing.assert_array_equal(default, explicit)
    assert default.shape[0] == 32 and default.shape[1] > 64 + 16  # the map at its size + bar
    # The middle of the map is mid-scale, not black (as a vmax of 1e6 would make it).
    assert default[16, 32].astype(int).sum() > 100
    # A mask blacks out what it leaves out; the default width enlarges the map for panels.
    masked = with_colorbar(values, valid=values < 0.5, label="sigma", min_width=0)
    assert (masked[31, 63] == 0).all() and not (masked[0, 1] == 0).all()
    assert with_colorbar(values, label="depth [m]").shape[0] == MIN_TILE_WIDTH // 2
