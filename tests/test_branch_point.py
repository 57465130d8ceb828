"""model.branch_point: where the heads split from the shared encoder, and what runs cost."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from csv_cells import assert_cells_match_results
from tiny_network import conv_flops, tiny_flops, tiny_parameters

from mtlscene.cli.main import build_cli
from mtlscene.errors import CheckpointError, ConfigError
from mtlscene.experiments.definition import Experiment, Row
from mtlscene.experiments.single_run import _training_cost
from mtlscene.experiments.summary import write_csv, write_table
from mtlscene.models import ASPP, DeepLabEncoder, DilatedResNet
from mtlscene.models.cost import count_parameters, forward_flops, network_cost
from mtlscene.trainers import MultiTaskModule
from mtlscene.weighting import PCGradWeighting

TESTS = Path(__file__).parent
TINY = str(TESTS / "conf" / "tiny.yaml")
PCGRAD = str(TESTS.parent / "configs" / "weighting" / "pcgrad.yaml")
TASKS = {
    name: {"hidden_channels": 8, "num_layers": 1} for name in ("semantic", "instance", "depth")
}
# tiny.yaml's backbone: ResNet-18 at output stride 16 with a 16-channel ASPP.
BACKBONE = {"name": "resnet18", "output_stride": 16, "aspp_channels": 16}


def _module(branch_point: str, **kwargs) -> MultiTaskModule:
    return MultiTaskModule(
        backbone=DeepLabEncoder(**BACKBONE), tasks=TASKS, branch_point=branch_point, **kwargs
    )


def _count(*modules: torch.nn.Module) -> int:
    return sum(count_parameters(module) for module in modules)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> str:
    """One synthetic data folder for every fit of this file (written by the first)."""
    return str(tmp_path_factory.mktemp("data") / "tiny")


def _fit_args(data_root: str, *options: str) -> list[str]:
    # Absolute run folders: each test runs in its own cwd, the fits are shared.
    runs = str(Path(data_root).parent / "runs" / "_".join(options).replace("/", "_"))
    logs = ["--trainer.default_root_dir", runs, "--trainer.logger.init_args.save_dir", runs]
    return ["fit", "--config", TINY, "--data.root", data_root, *logs, *options]


# 1. Parameters: the shared part and T copies of the tail add up to the ResNet/ASPP parts.


def test_parameter_counts_follow_the_branch_point():
    resnet = DilatedResNet("resnet18", output_stride=16)
    to_layer3 = _count(resnet.stem, *list(resnet.layers)[:3])
    layer4 = _count(resnet.layers[3])
    aspp = _count(ASPP(512, 16, [6, 12, 18]))
    decoders = {name: _count(head.decoder) for name, head in _module("aspp").heads.items()}
    tails = {"aspp": 0, "layer4": aspp, "layer3": layer4 + aspp}
    for branch_point, tail in tails.items():
        network = _module(branch_point).network
        shared = to_layer3 + layer4 + aspp - tail
        assert count_parameters(network.encoder) == shared
        for name, head in network.heads.items():
            assert count_parameters(head) == decoders[name] + tail, (branch_point, name)
        # The shared part once, the tail once per task (3 tasks).
        assert count_parameters(network) == shared + 3 * tail + sum(decoders.values())
    # Each head owns its copy: no tensor is shared between two heads' tails.
    heads = _module("layer3").network.heads
    first, second = (heads[n].trunk.layer4[0].conv1.weight for n in ("semantic", "depth"))
    assert first.data_ptr() != second.data_ptr()


def test_the_default_keeps_the_state_dict_keys_of_encoder_and_decoders():
    module = _module("aspp")
    expected = {f"network.encoder.{k}" for k in DeepLabEncoder(**BACKBONE).state_dict()}
    expected |= {
        f"network.heads.{name}.decoder.{key}"
        for name, head in module.heads.items()
        for key in head.decoder.state_dict()
    }
    network_keys = {k for k in module.state_dict() if k.startswith("network.")}
    assert network_keys == expected
    assert module.hparams.branch_point == "aspp"


def test_shared_part_then_tail_is_the_uncut_encoder():
    encoder = DeepLabEncoder(**BACKBONE).eval()
    image = torch.rand(2, 3, 32, 64)
    with torch.no_grad():
        whole = encoder(image)
        for branch_point in ("layer4", "layer3"):
            shared, tail = copy.deepcopy(encoder).split_at(branch_point)
            features = shared(image)
            assert (
                features.shape[1]
                == shared.out_channels
                == {"layer4": 512, "layer3": 256}[branch_point]
            )
            torch.testing.assert_close(tail(features), whole)


def test_flops_of_one_convolution_are_two_per_multiply_add_on_one_image():
    c_in, c_out, kernel, height, width = 3, 5, 3, 7, 9  # "same" padding: a 7x9 output
    conv = torch.nn.Conv2d(c_in, c_out, kernel, padding=1)
    assert forward_flops(conv, (height, width)) == 2 * c_in * c_out * kernel**2 * height * width


def test_flops_grow_as_the_heads_split_earlier():
    costs = {bp: network_cost(_module(bp).network, (32, 64)) for bp in ("aspp", "layer4", "layer3")}
    for branch_point, cost in costs.items():  # counted layer by layer in tiny_network.py
        assert cost.flops_per_image == tiny_flops(branch_point), branch_point
    flops = [costs[bp].flops_per_image for bp in ("aspp", "layer4", "layer3")]
    # Splitting earlier runs the split-off stage once per task (3) instead of once: two
    # more ASPPs at layer4, two more ASPPs and layer4s at layer3. At the 2x4 feature map of a
    # 32x64 image, an ASPP is 3.7 MFLOPs and layer4 (ResNet-18, dilated) 134 MFLOPs.
    pixels = 2 * 4
    aspp = (
        conv_flops(512, 16, 1, pixels)  # the 1x1 branch
        + 3 * conv_flops(512, 16, 3, pixels)  # the dilated 3x3 branches
        + conv_flops(512, 16, 1, 1)  # image pooling: a 1x1 conv on one pixel
        + conv_flops(5 * 16, 16, 1, pixels)  # the projection
    )
    layer4 = (
        conv_flops(256, 512, 3, pixels)
        + conv_flops(256, 512, 1, pixels)  # the downsample branch
        + 3 * conv_flops(512, 512, 3, pixels)
    )
    assert flops[1] - flops[0] == 2 * aspp == 7_413_760
    assert flops[2] - flops[1] == 2 * layer4 == 268_435_456
    assert costs["layer4"].image_size == (32, 64)
    assert "0.26 GFLOPs per 32x64 image" in costs["layer4"].describe()


# 2. Bad values: one message naming the option.


def test_an_unknown_branch_point_names_the_option_and_the_choices():
    with pytest.raises(ConfigError, match=r"model.branch_point must be one of aspp, layer4"):
        _module("layer2")


def test_a_backbone_that_cannot_split_names_the_option():
    class Plain(torch.nn.Module):
        out_channels = 8

        def forward(self, image):
            return image.mean(1, keepdim=True).expand(-1, 8, -1, -1)

    with pytest.warns(UserWarning, match="cannot be described"):  # not rebuildable; fine here
        assert len(MultiTaskModule(backbone=Plain(), tasks=TASKS).heads) == 3  # "aspp": no split
    with pytest.raises(ValueError, match=r"model.branch_point='layer4'.*Plain has none"):
        MultiTaskModule(backbone=Plain(), tasks=TASKS, branch_point="layer4")


# 3. Training: every branch point trains; the tails are each task's own parameters.


@pytest.fixture(scope="module")
def fits(data_root):
    """Branch point -> (its tiny fit, the messages printed about its cost); fitted once."""
    done: dict[str, tuple] = {}

    def fit(branch_point: str):
        if branch_point not in done:
            printed: list[str] = []
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr("mtlscene.callbacks.training_cost.rank_zero_info", printed.append)
                done[branch_point] = (
                    build_cli(_fit_args(data_root, "--model.branch_point", branch_point)),
                    printed,
                )
        return done[branch_point]

    return fit


@pytest.mark.parametrize("branch_point", ["aspp", "layer4", "layer3"])
def test_every_branch_point_trains_and_reports_its_cost(branch_point, fits):
    fit, printed = fits(branch_point)
    assert fit.trainer.global_step == 2
    with torch.no_grad():  # eval: BatchNorm statistics stay those of the checkpoint
        outputs = fit.model.eval()(torch.rand(1, 3, 32, 64))
    assert outputs["semantic"].shape[-2:] == outputs["depth"].shape[-2:] == (32, 64)
    (message,) = [m for m in printed if m.startswith("Network")]
    assert f"branch point {branch_point}" in message and "GFLOPs per 32x64 image" in message
    cost = _training_cost(fit.trainer)  # what an experiment run writes to result.json
    # The sizes worked out from the layer shapes (tiny_network.py), e.g. 11,419,254
    # parameters (11,415,552 shared) and 252,474,112 FLOPs per image at "aspp".
    assert (cost["parameters"], cost["shared_parameters"]) == tiny_parameters(branch_point)
    assert cost["flops_per_image"] == tiny_flops(branch_point)  # one 32x64 image, not a batch
    assert cost["image_size"] == [32, 64]
    assert cost["median_step_s"] > 0 and cost["timed_steps"] == 1  # 2 batches, 1 interval


def test_a_jacobian_weighting_gives_each_tail_its_own_task_gradient(data_root):
    options = ["--config", PCGRAD, "--model.branch_point", "layer4"]
    cli = build_cli(_fit_args(data_root, *options)[1:], run=False)
    module = cli.model
    assert isinstance(module.weighting, PCGradWeighting)
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    batch = next(iter(cli.datamodule.train_dataloader()))
    losses = module.task_losses(module(batch["image"]), batch)
    trunk = list(module.heads["depth"].trunk.parameters())
    expected = torch.autograd.grad(losses["depth"], trunk, retain_graph=True)
    total = module.weighting(losses, {}, shared=module.network.encoder, heads=module.heads)
    total.backward()
    for param, grad in zip(trunk, expected, strict=True):
        torch.testing.assert_close(param.grad, grad)
    module.zero_grad()
    cli.trainer.fit(module, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 2


# 4. Checkpoints: rebuilt at their branch point; a config with another one is refused.


def test_checkpoint_round_trip_at_layer4(data_root, fits, tmp_path):
    fit, _ = fits("layer4")
    path = fit.trainer.checkpoint_callback.last_model_path
    loaded = MultiTaskModule.load_from_checkpoint(path, weights_only=True, map_location="cpu")
    assert loaded.hparams.branch_point == "layer4"
    assert "aspp" in dict(loaded.heads["instance"].trunk.named_children())
    image = torch.rand(2, 3, 32, 64)
    fit.model.eval(), loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(image), fit.model(image), rtol=0, atol=0)

    validate = ["validate", "--config", TINY, "--data.root", data_root, "--ckpt_path", path]
    with pytest.raises(CheckpointError, match=r"model.branch_point: checkpoint 'layer4', yours"):
        build_cli([*validate, "--model.branch_point", "layer3"])
    # A checkpoint saved before the option existed was trained split after ASPP.
    checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    del checkpoint["hyper_parameters"]["branch_point"]
    old = tmp_path / "checkpoints" / "old.ckpt"
    old.parent.mkdir()
    torch.save(checkpoint, old)
    with pytest.raises(CheckpointError, match=r"model.branch_point: checkpoint 'aspp', yours"):
        build_cli([*validate[:-1], str(old), "--model.branch_point", "layer4"])


# 5. Experiment summary: a Cost table when the runs recorded one; older results work as before.


def _result(row: str, seed: int, tasks: list[str], cost: dict | None) -> dict:
    result = {
        "row": row,
        "seed": seed,
        "tasks": tasks,
        "test": {f"test/{t}/value": 1.0 + seed for t in tasks},
        "val": {},
        "sigma": {},
        "weight": {},
        "global_step": 4,
        "wall_time_s": 1.0,
        "log_dir": "none",
    }
    if cost is not None:
        result["cost"] = cost
    return result


def test_summary_has_a_cost_table_when_runs_recorded_their_cost(tmp_path):
    experiment = Experiment("branching", (Row("Split after layer4"), Row("Old run")), seeds=2)
    results = [
        _result(
            "Split after layer4",
            seed,
            ["semantic", "depth"],
            {
                "parameters": 17_460_000,
                "shared_parameters": 11_180_000,
                "flops_per_image": 1.38e9,
                "median_step_s": step,
            },
        )
        for seed, step in enumerate((0.2, 0.4))
    ]
    results.append(_result("Old run", 0, ["semantic", "depth"], None))
    table = write_table(results, experiment, tmp_path / "table.md", 2).read_text()
    assert "### Cost: mean ± std over seeds" in table
    cost_table = table.split("### Cost")[1]
    row = next(line for line in cost_table.splitlines() if line.startswith("| Split after layer4"))
    # Parameters and FLOPs in millions and billions; steps 0.2 and 0.4 s: 0.300 ± 0.141.
    assert [c.strip() for c in row.strip("|").split("|")] == [
        "Split after layer4",
        "17.46 ± 0.00",
        "11.18 ± 0.00",
        "1.38 ± 0.00",
        "0.300 ± 0.141",
        "2",
    ]
    old = next(line for line in cost_table.splitlines() if line.startswith("| Old run"))
    assert old.count("| - ") == 4
    header = write_csv(results, tmp_path / "results.csv").read_text().splitlines()[0]
    assert "cost/median_step_s" in header and "cost/parameters" in header
    assert_cells_match_results(tmp_path / "results.csv", results)  # the old run's cost: empty

    without = write_table(results[2:], experiment, tmp_path / "old.md", 2).read_text()
    assert "Cost" not in without
