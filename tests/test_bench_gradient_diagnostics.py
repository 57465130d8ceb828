"""The gradient-diagnostics benchmark runs and prints the overhead it measures."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

import bench_gradient_diagnostics  # noqa: E402
import pytest


@pytest.mark.parametrize("callback", ["gradients", "affinity"])
def test_benchmark_prints_ratio_and_cost_per_measurement(capsys, callback):
    bench_gradient_diagnostics.main(
        f"--callback {callback} --size 32 64 --batch 1 --steps 2 --warmup 1 --repeats 1 "
        "--every 2 --threads 1".split()
    )
    out = capsys.readouterr().out
    assert out.startswith(
        {"gradients": "GradientDiagnostics", "affinity": "TaskAffinity"}[callback]
    )
    # Timed steps 1 and 2: step 2 is measured.
    row = re.search(r"\| 2 \| 1 \| ([\d.]+) \(([\d.]+)\) \| (-?[\d.]+) \| (-?[\d.]+) % \|", out)
    assert row is not None, out
    assert float(row.group(1)) > 0 and row.group(1) == row.group(2)
    assert float(re.search(r"plain step \(median\): ([\d.]+) ms", out).group(1)) > 0
    assert re.search(r"unmeasured steps with the callback / plain steps \(medians\): [\d.]+", out)
