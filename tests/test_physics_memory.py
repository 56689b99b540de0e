"""The memory estimate before a solve, its refusal, and its calibration against a measured peak."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from vaereg_core.errors import PhysicsError
from vaereg_core.memory import ENV_VAR, MemoryBudgetError, available_bytes, check_memory, format_bytes
from vaereg_core.physics import homogenize
from vaereg_core.physics.memory import BYTES_PER_VOXEL, solve_bytes


def estimate(size, cases=3, backend="numpy", discretization="rotated", dtype="float64", structures=1):
    return solve_bytes((size,) * 3, structures=structures, cases=cases, backend=backend, discretization=discretization, dtype=dtype)


def test_estimate_grows_with_voxels_cases_precision_and_batch():
    assert estimate(64) == pytest.approx(8 * estimate(32), rel=1e-6)
    assert estimate(32, cases=6) > 1.8 * estimate(32)
    assert estimate(32, dtype="float32") < 0.6 * estimate(32)
    assert estimate(32, structures=4) == 4 * estimate(32)
    for backend, discretization in BYTES_PER_VOXEL:
        assert estimate(32, backend=backend, discretization=discretization) > 0
    # The figures the issue measured: 128^3 peaked at 3.1 GB (with ~0.35 GB of libraries); 256^3 ~25 GB.
    assert 2.5e9 < estimate(128) < 3.1e9
    assert 20e9 < estimate(256) < 25e9


def test_refusal_names_the_estimate_the_limit_and_the_override(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(MemoryBudgetError, match=r"needs about 3\.0 GB, more than the limit of 1\.0 GB.*--max-memory.*VAEREG_MAX_MEMORY_GB"):
        check_memory(3_000_000_000, "a job", max_gb=1.0)
    monkeypatch.setenv(ENV_VAR, "0.5")
    with pytest.raises(MemoryBudgetError, match="limit of 500.0 MB"):
        check_memory(600_000_000, "a job")
    check_memory(600_000_000, "a job", max_gb=1.0)  # the option beats the variable
    monkeypatch.setenv(ENV_VAR, "lots")
    with pytest.raises(MemoryBudgetError, match=ENV_VAR):
        check_memory(1, "a job")


def test_available_memory_is_known_on_linux(monkeypatch):
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    free = available_bytes()
    assert free is not None and free > 0
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(MemoryBudgetError, match="of memory available"):
        check_memory(free * 10, "a job")


def test_homogenize_refuses_before_allocating(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    voxels = np.zeros((16, 16, 16), np.uint8)
    voxels[:8] = 1
    with pytest.raises(MemoryBudgetError, match=r"homogenisation of 16x16x16 \(3 load cases, numpy float64, rotated\)"):
        homogenize(voxels, backend="numpy", max_memory=1e-6)
    assert homogenize(voxels, backend="numpy").constants["C11"] > 0


def test_non_finite_stress_is_a_physics_error(monkeypatch):
    from vaereg_core.physics.backends import SpectralOperator

    monkeypatch.setattr(SpectralOperator, "mean_stress", lambda self, u, strains: np.full((len(strains), 6), np.nan))
    voxels = np.zeros((4, 4, 4), np.uint8)
    voxels[:2] = 1
    with pytest.raises(PhysicsError, match="non-finite stress"):
        homogenize(voxels, backend="numpy")


MEASURE = """
import json, sys
import numpy as np
from vaereg_core.errors import NotConvergedError
from vaereg_core.physics import homogenize

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

size = int(sys.argv[1])
v = (np.random.default_rng(0).random((size,) * 3) < 0.5).astype(np.uint8)
homogenize(np.ones((4, 4, 4), np.uint8), backend="numpy")  # imports and FFT plans first
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # VmHWM := VmRSS now
before = status("VmRSS:")
try:  # the peak comes in the first iterations; a few are enough
    homogenize(v, backend="numpy", dtype="float64", max_iter=3, tol=1e-9)
except NotConvergedError:
    pass
print(json.dumps(status("VmHWM:") - before))
"""


def test_estimate_matches_a_measured_peak():
    if not sys.platform.startswith("linux"):
        pytest.skip("VmHWM in /proc is Linux's (ru_maxrss would count the parent's pages a forked child inherits)")
    size = 40
    measured = json.loads(subprocess.run([sys.executable, "-c", MEASURE, str(size)], capture_output=True, text=True, check=True).stdout)
    assert 0.85 * measured < estimate(size) < 1.5 * measured, (format_bytes(estimate(size)), format_bytes(measured))
