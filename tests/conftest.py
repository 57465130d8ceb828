"""Shared test set-up: no network, small thread counts, temp dirs for W&B, and the
grouping that lets `make test` run the suite on two xdist workers."""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One intra-op thread per worker (and per process it starts), so that the workers share
    # the cores instead of each taking them all. Set before torch reads it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

TESTS = Path(__file__).resolve().parent

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def _xdist_group(item: pytest.Item) -> str | None:
    """The xdist group of a test (one worker runs a group's tests, one after the other).

    - ``slurm`` tests share the one-node cluster (its two CPUs are this machine's): one at a
      time, or their jobs would queue behind each other's.
    - Tests that use the same module- or session-scoped fixture of this folder (a tiny fit, a
      built site, a prepared cache) go to one worker, so the fixture is built once.
    """
    if item.get_closest_marker("slurm"):
        return "slurm"
    for name in item.fixturenames:
        for fixturedef in item._fixtureinfo.name2fixturedefs.get(name, ())[-1:]:
            if fixturedef.scope not in ("module", "package", "session"):
                continue
            source = Path(inspect.getsourcefile(fixturedef.func) or "").resolve()
            if source.is_relative_to(TESTS):  # by module: its fixtures may use each other
                return f"{source.stem}.{name}" if source.stem == "conftest" else source.stem
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups the tests for ``--dist loadgroup``; under xdist, starts the ``slow`` ones first
    so that the two workers end together instead of one waiting for a long last test."""
    for item in items:
        group = _xdist_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable


@pytest.hookimpl(tryfirst=True)  # before xdist sends the collected node ids to the scheduler
def pytest_collection_finish(session: pytest.Session) -> None:
    """Puts each grouped test's xdist group into its node id where xdist could not.

    ``--dist loadgroup`` reads a test's group from the ``@group`` suffix of its node id, which
    xdist 3.8 writes into ``item._nodeid``; pytest 9.2 builds node ids from ``item._id``, so
    without this the groups are silently ignored (pytest-dev/pytest-xdist#1386).
    """
    if not getattr(session.config.option, "loadgroup", False):
        return
    for item in session.items:
        names = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")
        }
        suffix = "@" + "_".join(sorted(names))
        if names and not item.nodeid.endswith(suffix) and hasattr(item, "_id"):
            from _pytest.nodeid import NodeId

            item._id = NodeId.parse(item.nodeid + suffix)


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Every test writes W&B and Lightning files into its own temp dir."""
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    yield
    # W&B keeps process-wide state (the open run, its settings such as mode "disabled"):
    # a test that used it must not decide how the next test's W&B logger behaves.
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        if getattr(wandb, "run", None) is not None:
            wandb.finish()
        wandb.teardown()


@pytest.fixture(scope="session")
def ddp_tiny_fit(tmp_path_factory):
    """One 2-process DDP fit (gloo on CPU) of tests/conf/tiny.yaml, from the prepared cache,
    with the tests' DistributedProbe; shared by the tests that read what it leaves (each
    rank's s per step, the checkpoint, the cache folder and the printed log), so that the
    suite starts this two-process job once.

    Returns a namespace: ``stdout`` (both ranks), ``probe`` (the probe's folder), ``root``
    (the synthetic data), ``cache`` (the cache folder's entries right after the fit) and
    ``checkpoint`` (``last.ckpt``).
    """
    import subprocess
    from pathlib import Path
    from types import SimpleNamespace

    tests = Path(__file__).parent
    base = tmp_path_factory.mktemp("ddp_tiny_fit")
    root = base / "syn"
    args = ["fit", "--config", str(tests / "conf" / "tiny.yaml"), "--data.root", str(root)]
    args += ["--data.cache", "true", "--data.synthetic_images", "{train: 8, val: 4, test: 2}"]
    args += ["--trainer.limit_train_batches", "null", "--trainer.accelerator", "cpu"]
    args += ["--trainer.devices", "2", "--trainer.strategy", "ddp"]
    args += ["--trainer.callbacks+=ddp_probe.DistributedProbe"]
    args += [f"--trainer.callbacks.out_dir={base / 'probe'}"]
    path = os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "mtlscene", *args],
        capture_output=True,
        text=True,
        cwd=base,
        env=dict(os.environ, PYTHONPATH=path, WANDB_DIR=str(base / "wandb")),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return SimpleNamespace(
        stdout=result.stdout,
        probe=base / "probe",
        root=root,
        cache=sorted(p.name for p in (root / "mtlscene_cache").iterdir()),
        checkpoint=next((base / "runs" / "tiny").rglob("last.ckpt")),
    )
