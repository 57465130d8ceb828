"""`test` scored by the official CityScapes evaluators at the source files' resolution."""

import os
import re
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mtlscene.callbacks import OfficialEvaluation
from mtlscene.callbacks.official_evaluation import OFFICIAL_COLUMNS
from mtlscene.cli.main import build_cli
from mtlscene.data.cityscapes import synthetic
from mtlscene.data.cityscapes.datamodule import CityscapesDataModule
from mtlscene.data.cityscapes.encoding import INSTANCE_ID_OFFSET, decode_disparity, encode_semantic
from mtlscene.data.cityscapes.labels import label_id_lut
from mtlscene.data.cityscapes.layout import find_samples
from mtlscene.data.io import read_png
from mtlscene.metrics import SemanticSegmentationMetrics
from mtlscene.models import DeepLabEncoder
from mtlscene.trainers.multitask import MultiTaskModule

TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")
SPLITS = {"train": 1, "val": 1, "test": 2}


class Oracle(MultiTaskModule):
    """Predicts the (working-resolution) ground truth of each batch."""

    def __init__(self):
        tasks = {name: {"hidden_channels": 4, "num_layers": 1} for name in TASKS}
        super().__init__(DeepLabEncoder("resnet18", 32, aspp_channels=4), tasks)

    def test_step(self, batch, batch_idx):
        semantic = batch["semantic"].clamp(max=18)  # void (255) pixels are not scored
        instances = []
        for ids in batch["instance_ids"]:
            things = [int(i) for i in ids.unique() if i >= INSTANCE_ID_OFFSET]
            train_ids = label_id_lut("trainid")[[i // INSTANCE_ID_OFFSET for i in things]]
            masks = torch.stack([ids == i for i in things]) if things else ids[None] < 0
            instances.append(
                {
                    "masks": masks[: len(things)],
                    "labels": torch.as_tensor(train_ids, dtype=torch.long),
                    "scores": torch.linspace(1.0, 0.5, len(things)),
                }
            )
        return {
            "semantic": F.one_hot(semantic, 19).permute(0, 3, 1, 2).float() * 10,
            "instance": batch["instance_offset"],
            "depth": batch["disparity"][:, None],
            "oracle_instances": instances,
        }

    def cluster_instances(self, outputs):
        return outputs["oracle_instances"]

    def on_test_epoch_end(self):
        pass  # test_step above updates none of the module's own metrics


TASKS = ("semantic", "instance", "depth")


def _test_with(root: Path, source: tuple[int, int], size: tuple[int, int]) -> OfficialEvaluation:
    synthetic.generate_dataset(root, SPLITS, *source, seed=3, progress=False)
    data = CityscapesDataModule(root, size=size, batch_size=2, num_workers=0)
    callback = OfficialEvaluation(output_dir=str(root.parent / "official"))
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, callbacks=[callback], enable_progress_bar=False
    )
    trainer.test(Oracle(), data)
    return callback


def test_perfect_predictions_score_perfectly(tmp_path):
    official = tmp_path / "official"
    (official / "semantic").mkdir(parents=True)
    (official / "semantic" / "aachen_000000_000000_pred_labelIds.png").write_bytes(b"stale")
    (official / "notes.txt").write_text("not ours")
    # Working size = source size: the oracle is exact at the evaluated resolution.
    results = _test_with(tmp_path / "data", (128, 256), (128, 256)).results
    for key in ("iou_class", "iiou_class", "iou_category", "iiou_category", "ap", "ap50"):
        assert results[key] == pytest.approx(1.0), key
    assert results["disparity_mae"] == 0.0 and results["disparity_rmse"] == 0.0
    # Instances of 1000+ pixels within 100 m exist at this size; within 50 m there may be
    # none (nan), but never a wrong one.
    assert results["ap100m"] == pytest.approx(1.0)
    assert np.isnan(results["ap50m"]) or results["ap50m"] == pytest.approx(1.0)
    # Stale results of an earlier test are gone, other files in the folder are kept.
    assert len(list((official / "semantic").glob("*_pred_labelIds.png"))) == 2
    assert (official / "notes.txt").read_text() == "not ours"
    assert len(list((official / "instance").glob("*_pred_instances.txt"))) == 2


def test_scores_are_taken_at_the_source_resolution(tmp_path):
    root = tmp_path / "data"
    callback = _test_with(root, (64, 128), (32, 64))
    results = callback.results
    # By hand: upsample the working-resolution ground truth the oracle predicted to the
    # 64x128 files and compare with them; disparity scales with the width ratio 128/64.
    data = CityscapesDataModule(root, size=(32, 64), batch_size=2, num_workers=0)
    dataset = data.dataset("test")
    semantic = SemanticSegmentationMetrics.from_label_set("trainid")
    errors = []
    for index, files in enumerate(find_samples(root, "test")):
        item = dataset[index]
        logits = F.one_hot(item["semantic"].clamp(max=18), 19).permute(2, 0, 1).float()
        up = F.interpolate(logits[None], size=(64, 128), mode="bilinear")[0].argmax(0)
        target = encode_semantic(read_png(files.label_ids), "trainid")
        semantic.update(up[None], torch.from_numpy(target)[None].long())
        disparity, valid = decode_disparity(read_png(files.disparity))
        pred = F.interpolate(item["disparity"][None, None], size=(64, 128), mode="bilinear")
        errors.append((pred[0, 0].numpy() * 2.0 - disparity)[valid])
    errors = np.concatenate(errors).astype(np.float64)
    assert results["iou_class"] == pytest.approx(semantic.compute()["miou"].item(), abs=1e-5)
    assert results["iou_class"] < 0.999  # downsampling loses detail: not the working-size score
    assert results["disparity_mae"] == pytest.approx(np.abs(errors).mean(), rel=1e-4)
    assert results["disparity_rmse"] == pytest.approx(np.sqrt((errors**2).mean()), rel=1e-4)
    assert 0 < results["disparity_mae"] < 1.0


def test_official_evaluation_through_the_cli(capsys):
    cli = build_cli(
        [
            "test",
            "--config",
            TINY,
            "--trainer.callbacks+=mtlscene.callbacks.OfficialEvaluation",
            "--data.synthetic_resolution=[64, 128]",
        ]
    )
    metrics = cli.trainer.callback_metrics
    for key in ("iou_class", "iiou_class", "iou_category", "disparity_mae", "disparity_rmse"):
        assert torch.isfinite(metrics[f"test/official/{key}"]), key
    (official,) = [c for c in cli.trainer.callbacks if isinstance(c, OfficialEvaluation)]
    assert {"ap", "ap50", "ap100m", "ap50m"} <= set(official.results)  # nan when untrained
    out = capsys.readouterr().out
    assert "Official CityScapes evaluation of test at the original resolution" in out
    assert "iIoU category [%]" in out
    assert any(Path(cli.trainer.log_dir, "official_test", "semantic").glob("*.png"))


def test_official_evaluation_refuses_other_data():
    class Plain(pl.LightningDataModule):
        def test_dataloader(self):
            return torch.utils.data.DataLoader([{"image": torch.zeros(3, 32, 64)}])

    trainer = pl.Trainer(accelerator="cpu", logger=False, callbacks=[OfficialEvaluation()])
    with pytest.raises(TypeError, match="reads CityScapes files"):
        trainer.test(Oracle(), Plain())


@pytest.mark.slow
def test_ddp_gives_the_single_process_scores(tmp_path):
    # Two processes write their frames; rank zero evaluates, the disparity sums add up.
    args = [
        "test",
        "--config",
        TINY,
        "--trainer.callbacks+=mtlscene.callbacks.OfficialEvaluation",
        "--data.synthetic_resolution=[64, 128]",
        "--data.synthetic_images={train: 4, val: 2, test: 4}",  # 2 ranks x batch 2: no padding
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    ddp = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]
    result = subprocess.run(
        [sys.executable, "-m", "mtlscene", *args, *ddp],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = re.split(r"\n-+\n", result.stdout.split("at the original resolution")[1])[1]
    printed = {title: float(value) for title, value in re.findall(r"(.+?)\s{2,}([\d.]+)", table)}
    cli = build_cli(args)
    (official,) = [c for c in cli.trainer.callbacks if isinstance(c, OfficialEvaluation)]
    assert len(printed) == 10
    for key, title, scale in OFFICIAL_COLUMNS:
        assert printed[title] == pytest.approx(official.results[key] * scale, abs=1e-4), key
