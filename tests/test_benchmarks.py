"""The verdict logic of the benchmark scripts (benchmarks/ is no package: loaded by path).

These check what a benchmark concludes from its measurements, not the timings: a failed
child process must still give a FAIL verdict, and a coverage verdict needs a margin
beyond the noise measured over the seeds.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

import numpy as np
import pytest

from tests.helpers.paths import REPO


def _bench(name):
    folder = str(REPO / "benchmarks")
    sys.path.insert(0, folder)  # the scripts import their helpers (_memory) as run from there
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", f"{folder}/{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module


def test_coverage_verdict_needs_a_margin_beyond_the_noise_over_seeds():
    """0.998 of random with seeds that spread more than that is not a PASS; a gap of many
    standard errors is; one seed measures no noise and cannot PASS."""
    verdict = _bench("bench_coverage").verdict
    noisy_random = np.array([0.800, 0.812, 0.790, 0.805, 0.795])
    close = noisy_random * 0.998
    assert "FAIL, within the noise" in verdict(noisy_random, close[::-1])
    assert ": PASS (" in verdict(noisy_random, noisy_random - 0.05)
    assert "diversity is worse" in verdict(noisy_random, noisy_random + 0.05)
    assert "FAIL (one seed" in verdict(noisy_random[:1], noisy_random[:1] - 0.05)


def test_kmeans_default_backend_failing_is_a_fail_verdict():
    """When the default backend's child process fails the target is judged FAIL, naming
    why; it is not left out of the report."""
    bench = _bench("bench_kmeans")
    line = bench.default_verdict({}, {"auto": "exit 137: Killed"})
    assert line is not None and line.endswith(": FAIL") and "exit 137: Killed" in line
    fast = {"auto": {"seconds": 1.0}}
    assert bench.default_verdict(fast, {}).endswith(": PASS")
    assert bench.default_verdict({}, {}) is None  # --backend sklearn: no default run


def test_length_memory_child_failing_is_a_fail_row(monkeypatch):
    """A memory child that fails gives the memory target a FAIL row in the summary (the
    naive side's child carries no target)."""
    bench = _bench("bench_length")
    monkeypatch.setattr(bench, "run_memory_child", lambda args, who, unit: (None, "exit 1: boom"))
    bench.measure_memory(argparse.Namespace())
    rows = {r["label"]: r for r in bench.RESULTS}
    assert set(rows) == {"memory chars", "memory words"}
    assert all(r["result"] == "FAIL" and "exit 1: boom" in r["value"] for r in rows.values())


@pytest.mark.parametrize("name", ["bench_coverage", "bench_kmeans", "bench_length"])
def test_benchmarks_load_without_running(name):
    """Loading a benchmark runs nothing (its work is under ``if __name__ == "__main__"``)."""
    assert callable(_bench(name).main)
