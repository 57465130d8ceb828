import numpy as np
import torch
from PIL import Image

from mtlscene.callbacks import PredictionWriter


def _prediction(height=16, width=32):
    instance_map = torch.zeros(height, width, dtype=torch.long)
    instance_map[4:10, 4:12] = 1
    outputs = {
        "semantic": torch.full((1, height, width), 13),  # car everywhere
        "depth": torch.linspace(0.5, 8.0, width).expand(1, height, width).clone(),
        "instances": [
            {
                "masks": (instance_map == 1)[None],
                "labels": torch.tensor([13]),
                "scores": torch.tensor([0.9]),
                "instance_map": instance_map,
            }
        ],
    }
    batch = {
        "image": torch.rand(1, 3, height, width),
        "name": ["city_000000_000019"],
        "depth_scale": torch.tensor([20.0]),
    }
    return batch, outputs


def test_writes_pictures_and_benchmark_files(tmp_path):
    writer = PredictionWriter(str(tmp_path), benchmark_size=(32, 64))
    batch, outputs = _prediction()
    writer.write_image("city_000000_000019", batch, outputs, 0)
    pictures = tmp_path / "pictures"
    for suffix in ("semantic", "instances", "depth", "panel"):
        assert (pictures / f"city_000000_000019_{suffix}.png").is_file()
    semantic = np.asarray(Image.open(pictures / "city_000000_000019_semantic.png"))
    assert tuple(semantic[0, 0]) == (0, 0, 142)  # official colour of car
    label_ids = np.asarray(
        Image.open(tmp_path / "cityscapes/semantic/city_000000_000019_pred_labelIds.png")
    )
    assert label_ids.shape == (32, 64) and (label_ids == 26).all()  # upsampled, labelId of car
    text = (tmp_path / "cityscapes/instance/city_000000_000019_pred_instances.txt").read_text()
    assert text.split()[1:] == ["26", "0.900000"]


def test_metric_depth_colours_near_bright_and_far_dark(tmp_path):
    writer = PredictionWriter(str(tmp_path), benchmark=False, metric_depth=True, max_depth=40)
    batch, outputs = _prediction()
    writer.write_image("city_000000_000019", batch, outputs, 0)
    depth = np.asarray(Image.open(tmp_path / "pictures/city_000000_000019_depth.png")).sum(-1)
    # Disparity grows to the right, so depth shrinks: the right edge is nearer and brighter.
    assert depth[8, -1] > depth[8, 0]
    assert not (tmp_path / "cityscapes").exists()
