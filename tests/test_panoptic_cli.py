"""Panoptic quality in validate, streamed panoptic files in predict, heads found by kind."""

import logging
import math
from pathlib import Path

import pytest

from mtlscene.cli.data import main as data_main
from mtlscene.cli.main import build_cli
from mtlscene.evaluation import evaluate_panoptic
from mtlscene.postprocess import CentroidVoteClustering, PanopticFusion
from mtlscene.tasks import DepthHead, InstanceHead, SemanticHead

TESTS = Path(__file__).parent
TINY = str(TESTS / "conf" / "tiny.yaml")
PQ_KEYS = [f"{q}{group}" for q in ("pq", "sq", "rq") for group in ("", "_things", "_stuff")]


def test_validate_logs_pq_and_predict_streams_files_the_official_script_scores_alike():
    fit = build_cli(["fit", "--config", TINY])
    checkpoint = fit.trainer.checkpoint_callback.last_model_path
    validate = build_cli(["validate", "--config", TINY, "--ckpt_path", checkpoint])
    ours = {k: float(validate.trainer.callback_metrics[f"val/panoptic/{k}"]) for k in PQ_KEYS}
    predict = build_cli(
        [
            "predict",
            "--config",
            TINY,
            "--ckpt_path",
            checkpoint,
            "--data.batch_size",
            "1",
            "--trainer.callbacks+=mtlscene.callbacks.PredictionWriter",
            "--trainer.callbacks.output_dir=predictions",
            "--trainer.callbacks+=retention_probe.RetentionProbe",
        ]
    )
    # Streaming: each batch's image and prediction are gone by the next batch's end.
    probe = next(c for c in predict.trainer.callbacks if type(c).__name__ == "RetentionProbe")
    assert probe.alive_counts == [0, 0]
    assert predict.trainer.predict_loop.predictions == []
    assert len(list(Path("predictions/pictures").glob("*_panoptic.png"))) == 2

    assert data_main(["panoptic", "data/tiny_synthetic", "--splits", "val"]) == 0
    assert Path("data/tiny_synthetic/gtFine/cityscapes_panoptic_val.json").is_file()
    prediction_json = Path("predictions/cityscapes/panoptic/cityscapes_panoptic_val.json")
    official = evaluate_panoptic("data/tiny_synthetic", "val", prediction_json)
    for key in PQ_KEYS:
        if math.isnan(official[key]):
            assert math.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(official[key], abs=1e-3), key


def test_panoptic_subcommand_names_a_missing_ground_truth(tmp_path, capsys):
    assert data_main(["panoptic", str(tmp_path), "--splits", "val"]) == 2
    assert "_instanceIds.png" in capsys.readouterr().err


def test_postprocessing_is_off_with_a_message_when_a_head_is_missing(caplog):
    """Said when the config names the clustering; silent (debug) for a task set that simply
    has no instance head, as the shipped NYUv2 and own-data configs."""
    fixed = str(TESTS / "conf" / "fixed_weights.yaml")  # instance weight 0: no instance head
    asked = ["--model.clustering", "mtlscene.postprocess.CentroidVoteClustering"]
    # rank_zero_info's logger stops propagating to the root logger once lightning has set up
    # its own handler (depends on which test imported lightning first): listen to it directly.
    import lightning_utilities.core.rank_zero as rank_zero

    logger = rank_zero.log
    logger.addHandler(caplog.handler)
    said = []
    try:
        for extra in ([], asked):
            caplog.clear()
            with caplog.at_level(logging.INFO, logger=logger.name):
                cli = build_cli(["--config", TINY, "--config", fixed, *extra], run=False)
            said.append(caplog.text)
    finally:
        logger.removeHandler(caplog.handler)
    assert cli.model.clustering is None and cli.model.panoptic is None
    assert not {"instance_ap", "panoptic"} & set(cli.model.stage_metrics["val"])
    assert "is off" not in said[0]
    assert "model.clustering (CentroidVoteClustering) is off" in said[1]
    assert "centroid_vectors" in said[1]


def test_postprocessors_find_heads_by_kind_under_any_task_name():
    heads = {"seg": SemanticHead(8), "votes": InstanceHead(8), "disp": DepthHead(8)}
    clustering, fusion = CentroidVoteClustering(), PanopticFusion()
    assert clustering.bind(heads) == [] and fusion.bind(heads) == []
    assert clustering.sources == {"semantic": "seg", "offsets": "votes"}
    # Semantic logits over the 7 categories cannot serve: the roles need trainIds.
    missing = CentroidVoteClustering().bind({"seg": SemanticHead(8, label_set="category")})
    assert any("class_logits/trainid" in entry for entry in missing)
    # Two heads of one kind: the config must say which one.
    two = {"a": SemanticHead(8), "b": SemanticHead(8), "votes": InstanceHead(8)}
    with pytest.raises(ValueError, match="name the one to use"):
        CentroidVoteClustering().bind(two)
    assert CentroidVoteClustering(heads={"semantic": "b"}).bind(two) == []
    with pytest.raises(ValueError, match="needs a head producing 'class_logits/trainid'"):
        CentroidVoteClustering(heads={"semantic": "disp"}).bind(heads)
