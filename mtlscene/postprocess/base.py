"""The PostProcessor interface: post-processing that reads several heads, found by kind.

Instance clustering needs class logits and centroid vectors; panoptic fusion needs the same
two. Instead of reading ``outputs["semantic"]`` and ``outputs["instance"]``, a post-processor
declares each input as a *role* with the `HeadKind` it needs, and
`PostProcessor.bind` finds, among the active heads, the one producing that kind (or the
task named for the role in the config). When a role has no head, the post-processor is off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor, nn


class PostProcessor(nn.Module):
    """Base of post-processing steps that combine the raw outputs of several heads.

    Subclasses set ``requires`` (role -> head kind). A config may name the task for a role
    explicitly (``heads: {semantic: my_segmentation}``); otherwise the single active head of
    the required kind is used.

    Args:
        heads: optional role -> task name, overriding the search by kind.
    """

    requires: ClassVar[Mapping[str, str]] = {}

    def __init__(self, heads: Mapping[str, str] | None = None) -> None:
        super().__init__()
        named = dict(heads or {})
        unknown = sorted(set(named) - set(self.requires))
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: heads names unknown role(s) {unknown}; its roles are "
                f"{sorted(self.requires)}"
            )
        self.head_names = named
        self.sources: dict[str, str] = {}

    def bind(self, heads: Mapping[str, Any]) -> list[str]:
        """Find the task serving each role among the active ``heads`` (name -> TaskHead).

        Returns:
            What is missing, one readable entry per role without a head; empty when bound.

        Raises:
            ValueError: a named task has the wrong kind, or several heads could serve a role.
        """
        sources: dict[str, str] = {}
        missing: list[str] = []
        for role, kind in self.requires.items():
            name = self.head_names.get(role)
            if name is not None:
                if name not in heads:
                    missing.append(f"{role}: task {name!r} is not active")
                    continue
                found = getattr(heads[name], "output_kind", None)
                if found != kind:
                    raise ValueError(
                        f"{type(self).__name__}: heads.{role} names task {name!r}, whose output "
                        f"is {found!r}; the {role} role needs a head producing {kind!r}"
                    )
                sources[role] = name
                continue
            matches = [n for n, h in heads.items() if getattr(h, "output_kind", None) == kind]
            if len(matches) > 1:
                raise ValueError(
                    f"{type(self).__name__}: several active heads produce {kind!r} ({matches}); "
                    f"name the one to use with heads: {{{role}: <task name>}}"
                )
            if not matches:
                missing.append(f"{role}: no active head produces {kind!r}")
                continue
            sources[role] = matches[0]
        self.sources = {} if missing else sources
        return missing

    @property
    def is_bound(self) -> bool:
        """True once `bind` found a head for every role."""
        return set(self.sources) == set(self.requires)

    def inputs(self, outputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The raw outputs of the bound heads, by role."""
        if not self.is_bound:
            raise RuntimeError(
                f"{type(self).__name__} is not bound to heads: call bind(heads) first"
            )
        return {role: outputs[name] for role, name in self.sources.items()}


def bind_or_disable(
    option: str, processor: PostProcessor, heads: Mapping[str, Any]
) -> tuple[PostProcessor | None, str | None]:
    """Bind ``processor`` to ``heads``; when a head is missing, turn it off and say why.

    Args:
        option: the config key of the processor, named in the message (e.g. "model.clustering").
        processor: the post-processor to bind.
        heads: active task name -> TaskHead.

    Returns:
        The bound processor (or None when off) and an info message when it was turned off.
    """
    missing = processor.bind(heads)
    if not missing:
        return processor, None
    return None, (
        f"{option} ({type(processor).__name__}) is off: {'; '.join(missing)} "
        f"(active tasks: {sorted(heads) or 'none'})"
    )
