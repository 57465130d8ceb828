"""The training-step benchmark runs and prints both rates, their ratio and the FLOPs."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

import bench_training_step  # noqa: E402


def test_benchmark_prints_rates_ratio_and_flops(capsys):
    bench_training_step.main(
        "--backbone resnet18 --output-stride 32 --aspp-channels 8 --head-channels 8 "
        "--size 32 64 --batch 1 --steps 1 --warmup 1 --repeats 1 --peak-tflops 1".split()
    )
    out = capsys.readouterr().out
    lightning = float(re.search(r"Lightning trainer.fit\s+([\d.]+)", out).group(1))
    bare = float(re.search(r"bare PyTorch loop\s+([\d.]+)", out).group(1))
    ratio = float(re.search(r"ratio Lightning / bare: ([\d.]+)", out).group(1))
    assert lightning > 0 and bare > 0
    # The rates are printed to 3 decimals: allow their rounding (large on a slow machine,
    # where a tiny network still runs at a fraction of a step per second).
    rounding = 0.0005 / lightning + 0.0005 / bare
    assert abs(ratio / (lightning / bare) - 1) <= rounding + 0.01
    flops = float(re.search(r"FLOPs per training step: ([\d.]+) GFLOP", out).group(1))
    assert flops > 0 and "share of peak bf16 FLOP/s" in out
