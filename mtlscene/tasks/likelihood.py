"""The likelihood a task's loss is read as, which decides its uncertainty-weighted term."""

from __future__ import annotations

from enum import Enum


class Likelihood(str, Enum):
    """How a task's raw loss L relates to its homoscedastic noise sigma (PAPER.md table).

    With ``s = log sigma^2`` the weighted terms are:

    - ``gaussian`` (regression, paper's Eq. 7): ``0.5 * exp(-s) * L + 0.5 * s``
    - ``laplace`` (L1 read as a Laplace likelihood with scale sigma): ``exp(-s/2) * L + 0.5 * s``
    - ``boltzmann`` (softmax scaled by 1/sigma^2, paper's Eq. 10): ``exp(-s) * L + 0.5 * s``
    """

    GAUSSIAN = "gaussian"
    LAPLACE = "laplace"
    BOLTZMANN = "boltzmann"

    def weight_exponent(self) -> tuple[float, float]:
        """``(c, k)`` such that the effective weight on L is ``c * exp(-k * s)``."""
        return {
            Likelihood.GAUSSIAN: (0.5, 1.0),
            Likelihood.LAPLACE: (1.0, 0.5),
            Likelihood.BOLTZMANN: (1.0, 1.0),
        }[self]

    @classmethod
    def parse(cls, value: str | Likelihood) -> Likelihood:
        """Accept an enum member or its name, with an error listing the valid names."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(member.value for member in cls)
            raise ValueError(f"unknown likelihood {value!r}; choose one of: {names}") from None
