"""K runs on each GPU: the device list, its slots, and a process scheduler that packs them.

A paper-protocol run (128x256, batch 8) keeps a modern GPU a few per cent busy: the host
sets the pace. Packing K runs on each device multiplies an experiment's throughput. Each
run is one process that sees one GPU (``CUDA_VISIBLE_DEVICES``), so its trainer uses
device 0 of what it sees and needs no change.

The local executor takes a slot per run it starts (``LocalExecutor(slots=...)``); a job
that owns a whole node (SLURM) packs its runs with ``run_packed``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

Item = TypeVar("Item")
VISIBLE = "CUDA_VISIBLE_DEVICES"


class DeviceListError(ValueError):
    """A ``--devices`` list that this machine cannot serve (the message names the fix)."""


def visible_gpu_count() -> int:
    """GPUs this process sees (``torch.cuda.device_count()``; 0 without CUDA)."""
    import torch

    return torch.cuda.device_count()


def parse_devices(text: str | None, count: Callable[[], int] | None = None) -> list[str]:
    """The GPU indices that ``--devices`` names; an empty list means the CPU.

    Args:
        text: ``all`` (or None: every visible GPU), ``cpu``, or indices such as ``0,1,3``.
        count: how many GPUs are visible (default ``visible_gpu_count``; asked only when
            needed).

    Raises:
        DeviceListError: a malformed list, a repeated index, or an index not visible.
    """
    text = (text or "all").strip().lower()
    if text == "cpu":
        return []
    visible = (count or visible_gpu_count)()
    if text == "all":
        return [str(index) for index in range(visible)]
    items = [item.strip() for item in text.split(",")]
    if not all(item.isdigit() for item in items):
        raise DeviceListError(
            f"--devices {text!r}: give GPU indices separated by commas (e.g. 0,1,2,3), "
            "'all' or 'cpu'"
        )
    if len(set(items)) != len(items):
        raise DeviceListError(f"--devices {text!r} names a GPU twice; name each once")
    missing = [item for item in items if int(item) >= visible]
    if missing:
        seen = f"GPUs 0-{visible - 1}" if visible else "no GPU"
        raise DeviceListError(
            f"--devices {text!r}: this machine sees {seen} (torch.cuda.device_count() is "
            f"{visible}), so {','.join(missing)} cannot be used; pass 'all', 'cpu' or "
            "indices below the count"
        )
    return [str(int(item)) for item in items]


class DeviceSlots:
    """``runs_per_device`` slots on each device; a run holds one from start to end.

    ``acquire`` gives the least-loaded device (the first of equals), so fewer runs than
    slots still spread over every device.

    Args:
        devices: device indices, as this process numbers them.
        runs_per_device: runs at once on one device (K).
    """

    def __init__(self, devices: Sequence[str], runs_per_device: int = 1) -> None:
        if not devices:
            raise ValueError("DeviceSlots needs at least one device")
        if runs_per_device < 1:
            raise ValueError(f"runs_per_device must be at least 1, got {runs_per_device}")
        self.devices = list(devices)
        self.runs_per_device = runs_per_device
        self.busy = dict.fromkeys(self.devices, 0)

    @property
    def capacity(self) -> int:
        """Runs at once over all devices."""
        return len(self.devices) * self.runs_per_device

    def acquire(self) -> str | None:
        """Take a slot on the least-loaded device; None when every slot is taken."""
        device = min(self.devices, key=lambda d: self.busy[d])  # first of equals: stable
        if self.busy[device] >= self.runs_per_device:
            return None
        self.busy[device] += 1
        return device

    def release(self, device: str) -> None:
        """Give a slot back (the run on it ended, finished or failed)."""
        if self.busy.get(device, 0) < 1:
            raise ValueError(f"device {device!r} has no run to release")
        self.busy[device] -= 1

    def environment(self, device: str, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with ``CUDA_VISIBLE_DEVICES`` set to ``device`` alone.

        When ``base`` already restricts the GPUs (a SLURM job's allocation), the index is
        taken in that list, the numbering that ``torch`` used for it here.
        """
        env = dict(base)
        visible = [item for item in base.get(VISIBLE, "").split(",") if item.strip()]
        env[VISIBLE] = visible[int(device)].strip() if visible else device
        return env

    def describe(self) -> str:
        return (
            f"{self.runs_per_device} run(s) on each of {len(self.devices)} GPU(s) "
            f"({','.join(self.devices)})"
        )


def run_packed(
    items: Sequence[Item],
    slots: DeviceSlots,
    launch: Callable[[Item, dict[str, str]], subprocess.Popen],
    base_env: Mapping[str, str],
    poll_s: float = 0.1,
    stop: Callable[[], bool] | None = None,
) -> list[tuple[Item, int]]:
    """Run every item as one process, at most ``runs_per_device`` on each device.

    A run that ends, with any exit status, frees its slot for the next item. For a job
    that owns a whole node, e.g. its runs' spec files, each started with
    ``launch(spec, env) -> subprocess.Popen([python, -c, single_run, spec], env=env)``.

    Args:
        items: what to run, in order.
        slots: the devices and runs per device.
        launch: starts one item's process with the environment given.
        base_env: the environment each process starts from (its device set on top).
        poll_s: seconds between two looks at the running processes.
        stop: once it returns True no further item starts (a job told to stop); the
            running ones are still waited for.

    Returns:
        (item, exit status) of every item started, in the order they ended.
    """
    pending = list(items)
    running: list[tuple[Item, str, subprocess.Popen]] = []
    ended: list[tuple[Item, int]] = []
    try:
        while pending or running:
            if stop is not None and stop():
                pending = []
            while pending:
                device = slots.acquire()
                if device is None:
                    break
                item = pending.pop(0)
                running.append((item, device, launch(item, slots.environment(device, base_env))))
            if not running:
                if not pending:  # told to stop before anything was left running
                    break
                # A slot leaked: stop rather than wait forever.
                raise RuntimeError("no free device slot while no run is running")
            still = []
            for item, device, process in running:
                if process.poll() is None:
                    still.append((item, device, process))
                else:
                    slots.release(device)
                    ended.append((item, process.returncode))
            if len(still) == len(running):
                time.sleep(poll_s)
            running = still
    finally:
        for _, _, process in running:  # interrupted: leave no orphan behind
            if process.poll() is None:
                process.terminate()
                process.wait()
    return ended


__all__ = [
    "DeviceListError",
    "DeviceSlots",
    "parse_devices",
    "run_packed",
    "visible_gpu_count",
]
