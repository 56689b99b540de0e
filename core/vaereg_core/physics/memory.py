"""Memory a homogenisation solve needs, estimated before it allocates anything.

The estimate is linear in the voxels and the load cases:
``voxels * structures * (fixed + cases * per_case * itemsize / 8)`` bytes,
with ``fixed`` (material fields, Green operator, gradient symbols) and
``per_case`` (the five CG vectors, the load, the strain and stress work arrays
and the FFTs' temporaries, at float64) calibrated by measurement:
peak RSS (``ru_maxrss`` of a process started from a shell) during a solve
minus its resident size before, on a random two-phase structure, Linux x86-64, NumPy 2 / torch 2
on the CPU. Bytes per voxel, measured at 40^3 and 64^3 and estimated:

=======  =======  =======  ===========  ===========  ===========
backend  scheme   dtype    3 cases      6 cases      estimate
=======  =======  =======  ===========  ===========  ===========
numpy    rotated  float64  1282, 1269   2407, 2420   1300, 2440
numpy    rotated  float32   734,  721   1282, 1261    730, 1300
numpy    fe-full  float64  2051, 2040   4035, 4117   2080, 4120
numpy    fe-full  float32  1071, 1063   2064, 2052   1060, 2080
torch    rotated  float64  1930, 1860   3297, 2764   1910, 3320
torch    rotated  float32  1011,  897   1570, 1819   1205, 1910
torch    fe-full  float64  2467, 2311   4903, 4373   2550, 4950
torch    fe-full  float32  1386, 1282   2506, 2354   1350, 2550
=======  =======  =======  ===========  ===========  ===========

At 128^3 (numpy, rotated, float64, 3 cases) the estimate is 2.7 GB, and
the measured peak of ``vaereg homogenize`` there was 3.1 GB including the
interpreter and libraries (~0.35 GB); 256^3 needs ~22 GB for the solve.
The torch rows are CPU figures; on a CUDA device they are compared with
its free memory unmeasured (no GPU was at hand to calibrate them).
"""

from __future__ import annotations

import math

from vaereg_core.memory import check_memory

BYTES_PER_VOXEL: dict[tuple[str, str], tuple[float, float]] = {
    ("numpy", "rotated"): (160.0, 380.0),
    ("numpy", "fe-full"): (40.0, 680.0),
    ("torch", "rotated"): (500.0, 470.0),
    ("torch", "fe-full"): (150.0, 800.0),
}
"""(fixed, per load case at float64) bytes per voxel, by (backend, discretisation); see the module docstring."""


def solve_bytes(shape: tuple[int, ...], *, structures: int, cases: int, backend: str, discretization: str, dtype: str) -> int:
    """Estimated peak bytes a solve allocates.

    Parameters
    ----------
    shape : tuple of int
        Grid of one structure.
    structures : int
        Structures solved together (a batch).
    cases : int
        Load cases per structure (3 or 6).
    backend : {"numpy", "torch"}
        The backend actually used (after ``auto`` is resolved).
    discretization : {"rotated", "fe-full"}
    dtype : {"float64", "float32"}

    Returns
    -------
    int

    Examples
    --------
    >>> round(solve_bytes((128, 128, 128), structures=1, cases=3, backend="numpy", discretization="rotated", dtype="float64") / 1e9, 1)
    2.7
    """
    fixed, per_case = BYTES_PER_VOXEL[(backend, discretization)]
    item = 8 if dtype == "float64" else 4
    return int(math.prod(shape) * structures * (fixed + cases * per_case * item / 8))


def check_solve_memory(
    shape: tuple[int, ...], *, structures: int, cases: int, backend: str, discretization: str, dtype: str, device: str,
    max_gb: float | None = None,
) -> int:
    """Refuse a solve whose estimate exceeds the memory limit (see :func:`vaereg_core.memory.check_memory`).

    Returns the estimate in bytes.

    Raises
    ------
    MemoryBudgetError
        If the estimate exceeds ``max_gb``, ``$VAEREG_MAX_MEMORY_GB`` or the memory available.
    """
    needed = solve_bytes(shape, structures=structures, cases=cases, backend=backend, discretization=discretization, dtype=dtype)
    grid = "x".join(map(str, shape)) if structures == 1 else f"{structures} x " + "x".join(map(str, shape))
    what = f"homogenisation of {grid} ({cases} load cases, {backend} {dtype}, {discretization})"
    check_memory(needed, what, max_gb=max_gb, device=device)
    return needed
