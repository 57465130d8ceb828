"""GPU speed presets checked on the CPU: channels-last, torch.compile, pinned memory, DDP."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml

from mtlscene.callbacks import ChannelsLast, CompileModel
from mtlscene.cli.main import build_cli, main
from mtlscene.models import DeepLabEncoder
from mtlscene.trainers.multitask import MultiTaskModule

CONFIGS = Path(__file__).parents[1] / "configs"
TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")


def _tiny_module() -> MultiTaskModule:
    tasks = {name: {"hidden_channels": 8, "num_layers": 1} for name in ("semantic", "depth")}
    return MultiTaskModule(DeepLabEncoder("resnet18", 16, aspp_channels=16), tasks)


class ImageLayoutProbe(pl.Callback):
    """Records whether the image reaching the training step is channels-last."""

    def __init__(self):
        self.channels_last: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        image = batch["image"]
        self.channels_last.append(image.is_contiguous(memory_format=torch.channels_last))


def test_channels_last_gives_the_same_outputs_and_reaches_the_step():
    module = _tiny_module().eval()
    image = torch.rand(2, 3, 32, 64)
    with torch.no_grad():
        expected = module(image)
    callback = ChannelsLast()
    callback.setup(None, module, "fit")
    conv = module.network.encoder.resnet.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    batch = {"image": image}
    callback.on_train_batch_start(None, module, batch, 0)
    assert batch["image"].is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        outputs = module(batch["image"])
    for name, value in expected.items():
        torch.testing.assert_close(outputs[name], value, rtol=1e-4, atol=1e-4)
    # Through the CLI: the gpu preset's callback runs before the probe (appended after it).
    cli = build_cli(
        [
            "--config",
            TINY,
            "--trainer.callbacks+=mtlscene.callbacks.ChannelsLast",
            "--trainer.max_epochs=1",
            "--trainer.limit_val_batches=0",
        ],
        run=False,
    )
    probe = ImageLayoutProbe()
    cli.trainer.callbacks.append(probe)
    cli.trainer.fit(cli.model, cli.datamodule)
    assert probe.channels_last and all(probe.channels_last)


def test_compile_model_compiles_the_network_in_place():
    # Inductor on this 2-core CPU needs about 5 minutes to compile the tiny network, too slow
    # for the suite. A backend that records the FX graphs dynamo hands it and runs them as
    # they are shows in seconds that the network's forward really goes through torch.compile.
    graphs: list[torch.fx.GraphModule] = []

    def recording_backend(graph: torch.fx.GraphModule, example_inputs) -> object:
        graphs.append(graph)
        return graph.forward

    torch._dynamo.reset()  # no graph cached by an earlier test
    module = _tiny_module()
    keys = set(module.state_dict())
    CompileModel(backend=recording_backend).setup(None, module, "test")  # not a compiled stage
    assert module.network._compiled_call_impl is None
    CompileModel(backend=recording_backend).setup(None, module, "fit")
    assert module.network._compiled_call_impl is not None
    assert set(module.state_dict()) == keys  # checkpoints keep their parameter names
    module.eval()
    image = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        compiled = module(image)
        assert graphs, "the compiled network's forward never reached the backend"
        # The graphs hold the whole network: every one of its convolutions.
        traced = sum(
            node.target in (torch.conv2d, torch.nn.functional.conv2d)
            for graph in graphs
            for node in graph.graph.nodes
        )
        convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in module.network.modules())
        assert traced == convolutions
        module.network._compiled_call_impl = None
        eager = module(image)
    torch.testing.assert_close(compiled["depth"], eager["depth"])
    with pytest.raises(ValueError, match="not Lightning stages"):
        CompileModel(stages=["training"])


def _resolved(capsys, *configs: str) -> dict:
    args = ["fit"]
    for config in configs:
        args += ["--config", config]
    with pytest.raises(SystemExit):
        main([*args, "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)


def test_gpu_and_ddp_presets(capsys):
    base = str(CONFIGS / "cityscapes_tiny.yaml")
    gpu = _resolved(capsys, base, str(CONFIGS / "trainer" / "gpu.yaml"))
    assert gpu["trainer"]["precision"] == "bf16-mixed"
    assert gpu["data"]["init_args"]["pin_memory"] is True
    callbacks = [c["class_path"] for c in gpu["trainer"]["callbacks"]]
    # Appended to the main config's callbacks, not replacing them.
    assert callbacks[-1] == "mtlscene.callbacks.ChannelsLast"
    assert "mtlscene.callbacks.MetricsTable" in callbacks
    ddp = _resolved(capsys, base, str(CONFIGS / "trainer" / "ddp.yaml"))
    assert ddp["trainer"]["sync_batchnorm"] is True and ddp["trainer"]["strategy"] == "ddp"


def test_pin_memory_reaches_every_loader():
    cli = build_cli(["--config", TINY, "--data.pin_memory=true"], run=False)
    data = cli.datamodule
    data.prepare_data()
    data.setup("fit")
    data.setup("test")
    for loader in (data.train_dataloader(), data.val_dataloader(), data.test_dataloader()):
        assert loader.pin_memory
