"""What a multi-task network costs: parameters (shared and per head) and forward FLOPs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mtlscene.models.network import MultiTaskNetwork


@dataclass(frozen=True)
class NetworkCost:
    """Parameter counts of a network and, when measured, its forward FLOPs per image.

    Attributes:
        parameters: every parameter of the network (shared encoder and heads).
        shared_parameters: those of ``network.encoder`` (what the tasks share).
        head_parameters: task -> parameters of its head (decoder and any encoder stages it
            owns past the branch point).
        flops_per_image: forward FLOPs of one image at ``image_size`` (a multiply-add counts
            2), or None when not measured.
        image_size: (height, width) the FLOPs were counted at, or None.
    """

    parameters: int
    shared_parameters: int
    head_parameters: dict[str, int]
    flops_per_image: int | None = None
    image_size: tuple[int, int] | None = None

    def as_dict(self) -> dict[str, object]:
        """Plain data (for a result file)."""
        data = asdict(self)
        data["image_size"] = list(self.image_size) if self.image_size else None
        return data

    def describe(self) -> str:
        """One line for a log: ``12.3 M parameters (shared 2.8 M; semantic 3.2 M, ...)``."""
        heads = ", ".join(f"{name} {n / 1e6:.2f} M" for name, n in self.head_parameters.items())
        text = (
            f"{self.parameters / 1e6:.2f} M parameters (shared {self.shared_parameters / 1e6:.2f} "
            f"M; {heads})"
        )
        if self.flops_per_image is not None and self.image_size is not None:
            height, width = self.image_size
            text += f", {self.flops_per_image / 1e9:.2f} GFLOPs per {height}x{width} image forward"
        return text


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements of ``module`` (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def forward_flops(network: nn.Module, image_size: Sequence[int]) -> int:
    """FLOPs of one forward pass of ``network`` on a single image of ``image_size`` (H, W).

    Runs in eval mode (BatchNorm statistics are left untouched) on the network's device, and
    calls ``forward`` directly, so a network compiled in place (``nn.Module.compile``) is
    counted eagerly rather than recompiled for this one input.
    """
    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    # Zeros, not random numbers: the count does not depend on values, and the training
    # run must not draw from the RNG here (seeded runs stay the same with or without it).
    image = torch.zeros(1, 3, *(int(v) for v in image_size), device=device)
    was_training = network.training
    network.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            network.forward(image)
    finally:
        network.train(was_training)
    return int(counter.get_total_flops())


def network_cost(network: MultiTaskNetwork, image_size: Sequence[int] | None = None) -> NetworkCost:
    """Parameters of ``network`` (shared and per head) and, given a size, forward FLOPs."""
    size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    return NetworkCost(
        parameters=count_parameters(network),
        shared_parameters=count_parameters(network.encoder),
        head_parameters={name: count_parameters(head) for name, head in network.heads.items()},
        flops_per_image=None if size is None else forward_flops(network, size),
        image_size=size,
    )


__all__ = ["NetworkCost", "count_parameters", "forward_flops", "network_cost"]
