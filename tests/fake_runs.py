"""Fake experiment runs for scheduling tests: short ``python -c`` children, no training."""

from __future__ import annotations

# A fake run: records what it saw, sleeps, then fails when told to (exit 1, at once) or
# writes result.json with a step time. Its one argument is the run's spec.json.
FAKE_RUN = r"""
import json, os, sys, time
spec = json.load(open(sys.argv[1]))
run_dir = spec["run_dir"]
start = time.time()
fail = spec["row"] == os.environ.get("FAKE_FAIL_ROW") and not os.path.exists(
    os.path.join(run_dir, "..", "..", "..", "fixed"))
if not fail:
    time.sleep(float(os.environ["FAKE_SLEEP"]))
seen = {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start, "end": time.time()}
json.dump(seen, open(os.path.join(run_dir, "seen.json"), "w"))
if fail:
    print("fake failure"); sys.exit(1)
result = {"row": spec["row"], "seed": spec["seed"], "cost": {"median_step_s": 0.05}}
json.dump(result, open(os.path.join(run_dir, "result.json"), "w"))
"""


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = open_now = 0
    for _, change in events:
        open_now += change
        most = max(most, open_now)
    return most


def by_device(seen: list[dict]) -> dict[str, list[tuple[float, float]]]:
    devices: dict[str, list[tuple[float, float]]] = {}
    for record in seen:
        devices.setdefault(record["visible"], []).append((record["start"], record["end"]))
    return devices
