"""The benchmark script keeps working (its numbers are measured by hand, not asserted here)."""

import subprocess
import sys

from conftest import ROOT


def test_engine_benchmark_runs_and_prints_every_figure():
    done = subprocess.run([sys.executable, "benchmarks/engine.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line and " " not in line)
    for name in ("fit_overhead_ratio", "feature_cache_speedup", "uncached_val_accuracy",
                 "cached_val_accuracy", "cached_again_seconds"):
        assert float(values[name]) > 0, name
    assert "features loaded from the cache" in done.stdout  # the second cached run skipped extraction
