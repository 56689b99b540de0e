"""Effective elastic stiffness of periodic two-phase voxel structures.

Displacement-based FFT homogenisation (the formulation of FANS and muGrid):
for each prescribed macroscopic strain ``E`` the periodic nodal displacement
fluctuation ``u`` solves ``K u = -B^T C E`` on the voxel mesh of the chosen
discretisation (see :mod:`vaereg_core.physics.elements`). The system is solved
by conjugate gradients preconditioned with the exact inverse of the stiffness
of a homogeneous reference medium, which is diagonal in Fourier space (3x3
blocks). This is the Fourier–Galerkin/Krylov scheme of Zeman et al. (2010)
and de Geus et al. (2017) written on displacements: the same Krylov iterates,
half the FFTs of the strain-based form. With the one-point element rule the
discrete gradient is Willot's (2015) "rotated" finite difference, which does
not ring at high contrast. The plain Moulinec–Suquet fixed point (same
operators, Richardson iteration with the optimal reference medium) is kept
for comparison (``method="basic"``).

The relative residual is ``sqrt(r^T K_0^{-1} r) / sqrt(r_0^T K_0^{-1} r_0)``:
with a reference medium proportional to the identity this is the norm of the
projected stress ``||G sigma|| / ||G sigma_0||`` that strain-based codes report.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from vaereg_core.errors import NotConvergedError, PhysicsError, SolverCancelled
from vaereg_core.physics.backends import GatherOperator, Operator, SpectralOperator, make_lib
from vaereg_core.physics.elements import DISCRETIZATIONS, element, inverse_symbol, stiffness_symbol
from vaereg_core.physics.memory import check_solve_memory
from vaereg_core.physics.phases import DEFAULT_HARD, DEFAULT_SOFT, Phase
from vaereg_core.physics.sensitivity import phase_flip_change, stiffness_derivative

LOAD_CASES: tuple[str, ...] = ("e11", "e22", "e33", "e23", "e13", "e12")
"""Names of the unit macroscopic strains, in Voigt order (shears are engineering: gamma = 1)."""

NORMAL_CONSTANTS: tuple[str, ...] = ("C11", "C22", "C33", "C12", "C13", "C23")
"""The paper's six properties, given by the three normal load cases."""

ALL_CONSTANTS: tuple[str, ...] = tuple(f"C{i + 1}{j + 1}" for i in range(6) for j in range(i, 6))
"""The 21 independent entries of the symmetric 6x6 stiffness."""

DEFAULT_TOL = 1e-5
"""Default relative residual. 1e-4 already gives C11 to ~1e-7 and C12 to ~1e-5 relative
(measured, see the tests and benchmark); 1e-5 leaves a margin for any structure."""

DEFAULT_MAX_ITER = 1000
BACKENDS = ("auto", "numpy", "torch")
DTYPES = ("float64", "float32")
METHODS = ("cg", "basic")


@dataclass
class HomogenizationResult:
    """Effective stiffness of one structure and how it was computed.

    Attributes
    ----------
    stiffness : (6, 6) float64 ndarray
        Effective Voigt stiffness (GPa), order 11, 22, 33, 23, 13, 12; symmetrised
        (mean of C and C^T); NaN where not computed (the shear block when only the
        normal load cases were solved).
    stiffness_raw : (6, 6) float64 ndarray
        Column k is the mean stress under unit strain k, not symmetrised (NaN columns not solved).
    constants : dict
        ``C11 C22 C33 C12 C13 C23`` (and the other 15 when ``constants="all"``), GPa.
    iterations : dict
        Iterations per load case until its relative residual met ``tol``.
    residuals : dict
        Final relative residual per load case (recomputed from the true residual).
    """

    stiffness: np.ndarray
    stiffness_raw: np.ndarray
    constants: dict[str, float]
    iterations: dict[str, int]
    residuals: dict[str, float]
    discretization: str
    backend: str
    device: str
    dtype: str
    tol: float
    method: str
    seconds: float
    volume_fraction: float
    shape: tuple[int, int, int]
    hard: Phase = DEFAULT_HARD
    soft: Phase = DEFAULT_SOFT
    work_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able form (NaN entries of the stiffness become None)."""
        stiffness = [[None if math.isnan(v) else float(v) for v in row] for row in self.stiffness]
        return {
            "constants": {k: float(v) for k, v in self.constants.items()},
            "units": "GPa",
            "stiffness": stiffness,
            "iterations": dict(self.iterations),
            "residuals": {k: float(v) for k, v in self.residuals.items()},
            "discretization": self.discretization,
            "backend": self.backend,
            "device": self.device,
            "dtype": self.dtype,
            "tol": self.tol,
            "method": self.method,
            "seconds": self.seconds,
            "volume_fraction": self.volume_fraction,
            "shape": list(self.shape),
            "hard": self.hard.to_dict(),
            "soft": self.soft.to_dict(),
            "work_bytes": self.work_bytes,
        }


# ---- input checks ---------------------------------------------------------------------------


def load_cases_for(names: Sequence[str]) -> tuple[int, ...]:
    """The fewest normal load cases that give the named normal constants.

    >>> load_cases_for(["C11"]), load_cases_for(["C11", "C12"]), load_cases_for(["C12", "C33"])
    ((0,), (0,), (0, 2))
    """
    index = [(int(n[1]) - 1, int(n[2]) - 1) for n in names]
    if any(i > 2 or j > 2 for i, j in index):
        raise PhysicsError(f"only the normal constants {', '.join(NORMAL_CONSTANTS)} come from the normal load cases")
    for size in (1, 2, 3):
        for cases in itertools.combinations(range(3), size):
            if all(i in cases or j in cases for i, j in index):
                return cases
    return (0, 1, 2)


def _check_load_cases(load_cases: Sequence[int] | None, constants: str) -> tuple[int, ...]:
    if load_cases is None:
        return tuple(range(3 if constants == "normal" else 6))
    solved = tuple(sorted({int(c) for c in load_cases}))
    if constants != "normal" or not solved or not set(solved) <= {0, 1, 2}:
        raise PhysicsError(f"load_cases must be some of 0, 1, 2 (the normal load cases) with constants='normal', got {list(load_cases)}")
    return solved


def check_voxels(voxels: Any) -> np.ndarray:
    """A binary (nx, ny, nz) structure as uint8, or PhysicsError saying what is wrong."""
    try:
        array = np.asarray(voxels)
    except Exception as exc:  # noqa: BLE001 - anything not array-like
        raise PhysicsError(f"structure is not an array: {exc}") from None
    if array.ndim != 3:
        raise PhysicsError(f"structure must be a 3-D voxel array, got {array.ndim}-D with shape {array.shape}")
    if array.size == 0:
        raise PhysicsError(f"structure is empty (shape {array.shape})")
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise PhysicsError(f"structure must hold numbers 0/1, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise PhysicsError("structure contains NaN or infinite values")
    values = np.unique(array)
    if not np.all(np.isin(values, (0, 1))):
        shown = ", ".join(f"{v:g}" for v in values[:5]) + (" ..." if len(values) > 5 else "")
        raise PhysicsError(f"structure must be binary (0 = soft, 1 = hard), found values {shown}; threshold it first")
    return array.astype(np.uint8)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise PhysicsError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def _check_phase(phase: Any, which: str) -> Phase:
    if not isinstance(phase, Phase):
        raise PhysicsError(f"{which} phase must be a Phase (use Phase.from_young(E, nu)), got {type(phase).__name__}")
    return phase


# ---- backend choice ---------------------------------------------------------------------------


def resolve_backend(backend: str, device: str) -> tuple[str, str]:
    """(backend, device) actually used for a request.

    ``auto`` picks the fastest measured option: torch on a CUDA GPU when one is
    available (or requested), otherwise the NumPy backend (faster than torch on
    CPU for this operator, see ``benchmarks/bench_physics.py``).
    """
    _check_choice("backend", backend, BACKENDS)
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise PhysicsError(f"unknown device {device!r}; choose auto, cpu or cuda")
    if device == "auto":
        device = "cuda" if backend != "numpy" and _cuda_available() else "cpu"
    if device.startswith("cuda"):
        if backend == "numpy":
            raise PhysicsError("the numpy backend runs on the CPU only; use backend 'torch' (or 'auto') for cuda")
        if not _cuda_available():
            raise PhysicsError("device 'cuda' requested but no CUDA GPU is available (use device 'auto' or 'cpu')")
        return "torch", device
    if backend == "auto":
        backend = AUTO_CPU_BACKEND
    return backend, "cpu"


AUTO_CPU_BACKEND = "numpy"
"""Backend that ``auto`` picks on the CPU (the faster one in the benchmark on a 2-core CPU)."""


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def make_operator(name: str, device: str, el, lam, mu, cases, green, dtype, *, workers=None, operator=None) -> Operator:
    """The operator of a discretisation on a backend.

    ``operator`` forces ``"spectral"`` (rotated scheme only) or ``"gather"``;
    by default the rotated scheme uses the spectral form (fewer FFTs) and
    ``fe-full`` the gather form.
    """
    lib = make_lib(name, dtype, device=device, workers=workers)
    kind = operator or ("spectral" if el.discretization == "rotated" else "gather")
    _check_choice("operator", kind, ("spectral", "gather"))
    if kind == "spectral":
        if el.discretization != "rotated":
            raise PhysicsError("the spectral operator exists for the rotated scheme only")
        return SpectralOperator(lib, el, lam, mu, cases, green)
    return GatherOperator(lib, el, lam, mu, cases, green)


# ---- the solver --------------------------------------------------------------------------------


def reference_medium(hard: Phase, soft: Phase, method: str) -> tuple[float, float]:
    """Lamé constants of the reference medium of the preconditioner.

    For conjugate gradients only its shape matters (the scale cancels); the
    arithmetic mean of the extreme phases is also the optimal Richardson choice
    of Moulinec–Suquet's basic scheme.
    """
    return 0.5 * (hard.lam + soft.lam), 0.5 * (hard.mu + soft.mu)


def unit_strain(case: int) -> np.ndarray:
    """Voigt vector of unit macroscopic strain ``case`` (engineering shear gamma = 1)."""
    e = np.zeros(6)
    e[case] = 1.0
    return e


def solve_cases(
    be: Operator,
    strains: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    method: str = "cg",
    omega: float = 1.0,
    cancel: Callable[[], bool] | None = None,
    case_names: Sequence[str] | None = None,
    load_scale: np.ndarray | None = None,
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Solve ``K u = -B^T C E`` for every case of the backend's batch.

    Parameters
    ----------
    be : Operator
    strains : (B, 6) ndarray
        Macroscopic Voigt strain of each case.
    tol : float
        Relative residual to reach (preconditioned norm).
    max_iter : int
    method : {"cg", "basic"}
        Preconditioned conjugate gradients, or the Moulinec–Suquet fixed point
        ``u += omega K_0^{-1} r``.
    cancel : callable, optional
        Polled every iteration; True aborts with :class:`SolverCancelled`.
    case_names : sequence of str, optional
        Names for error messages.
    load_scale : (B,) ndarray, optional
        Size of the preconditioned load of a fully heterogeneous case; a load below
        100 machine epsilons of it is round-off and the case is solved by u = 0.

    Returns
    -------
    u : backend array (B, 3, nx, ny, nz)
    iterations : (B,) int ndarray
        Iterations until each case met ``tol``.
    residuals : (B,) float ndarray
        Final relative residual of each case, from the true residual ``f - K u``.

    Raises
    ------
    NotConvergedError
        If a case does not reach ``tol`` within ``max_iter`` iterations.
    """
    batch = be.batch
    names = list(case_names) if case_names is not None else [f"case {b}" for b in range(batch)]
    f = be.zeros()
    be.load_forces(strains, f)
    u, r, z, q = be.zeros(), be.copy(f), be.zeros(), be.zeros()
    be.precondition(r, z)
    rz = be.dot(r, z)
    norm0 = np.sqrt(np.maximum(rz, 0.0))
    # A load without forces (homogeneous structure; laminate sheared along its layers) is
    # solved exactly by u = 0; its residual is round-off, so it is not iterated.
    eps = float(np.finfo(np.dtype(be.dtype_name)).eps)
    scale = np.asarray(load_scale, float) if load_scale is not None else np.full(batch, float(norm0.max()))
    active = norm0 > 100 * eps * scale
    safe0 = np.where(active, norm0, 1.0)
    iterations = np.zeros(batch, dtype=int)
    done = ~active
    relres = np.where(active, 1.0, 0.0)
    p = be.copy(z) if method == "cg" else None
    it = 0
    restarts = 0
    while True:
        while not done.all():
            if it >= max_iter:
                worst = int(np.argmax(np.where(done, -1.0, relres)))
                raise NotConvergedError(names[worst], it, float(relres[worst]), tol)
            if cancel is not None and cancel():
                raise SolverCancelled(it)
            it += 1
            if method == "cg":
                be.apply_stiffness(p, q)
                pq = be.dot(p, q)
                alpha = np.where(active & (pq > 0), rz / np.where(pq > 0, pq, 1.0), 0.0)
                be.axpy(u, alpha, p)
                be.axpy(r, -alpha, q)
                be.precondition(r, z)
                rz_new = be.dot(r, z)
                beta = np.where(active, rz_new / np.where(rz > 0, rz, 1.0), 0.0)
                be.xpay(p, beta, z)
                rz = rz_new
            else:
                be.axpy(u, np.where(active, omega, 0.0), z)
                be.apply_stiffness(u, q)
                # r = f - K u
                be.xpay(q, np.full(batch, -1.0), f)
                r, q = q, r
                be.precondition(r, z)
                rz = be.dot(r, z)
            relres = np.where(active, np.sqrt(np.abs(rz)) / safe0, 0.0)
            if not np.all(np.isfinite(relres)):
                raise PhysicsError(f"the solver diverged (non-finite residual) at iteration {it}")
            newly = active & ~done & (relres <= tol)
            iterations[newly] = it
            done |= newly
        # Check the true residual f - K u: the recursive one of CG can drift in float32.
        be.apply_stiffness(u, q)
        be.xpay(q, np.full(batch, -1.0), f)
        r = be.copy(q)
        be.precondition(r, z)
        rz = be.dot(r, z)
        relres = np.where(active, np.sqrt(np.abs(rz)) / safe0, 0.0)
        bad = active & (relres > 2 * tol)
        if not bad.any() or restarts >= 3:
            break
        restarts += 1
        done = ~bad
        if method == "cg":
            p = be.copy(z)
    if (relres > 2 * tol).any():
        worst = int(np.argmax(relres))
        raise NotConvergedError(names[worst], it, float(relres[worst]), tol)
    return u, iterations, relres


@contextlib.contextmanager
def _blas_single_thread(backend: str):
    """Keep BLAS to one thread while the numpy backend runs.

    The vector updates are memory-bound; OpenBLAS threads that spin after each
    call steal the cores from pocketfft's FFT threads (measured: 2x slower solves).
    """
    if backend != "numpy":
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _material_fields(stack: np.ndarray, hard: Phase, soft: Phase) -> tuple[np.ndarray, np.ndarray]:
    lam = np.where(stack == 1, hard.lam, soft.lam).astype(np.float64)
    mu = np.where(stack == 1, hard.mu, soft.mu).astype(np.float64)
    return lam, mu


def homogenize_batch(
    stack: Any,
    hard: Phase = DEFAULT_HARD,
    soft: Phase = DEFAULT_SOFT,
    *,
    constants: str = "normal",
    tol: float = DEFAULT_TOL,
    discretization: str = "rotated",
    backend: str = "auto",
    device: str = "auto",
    dtype: str = "float64",
    max_iter: int = DEFAULT_MAX_ITER,
    method: str = "cg",
    cancel: Callable[[], bool] | None = None,
    workers: int | None = None,
    operator: str | None = None,
    max_memory: float | None = None,
    load_cases: Sequence[int] | None = None,
    sensitivity: bool = False,
) -> list[HomogenizationResult]:
    """Effective stiffness of a stack of structures of one shape, solved as one batch.

    All load cases of all structures share each FFT and each operator call
    (on a GPU this is what makes it fast). Parameters as :func:`homogenize`;
    ``stack`` is (N, nx, ny, nz).

    With ``sensitivity=True`` each result's ``extra`` holds, for every constant
    whose two load cases were solved, its derivative field (``"sensitivity"``)
    and the estimated change of flipping each voxel (``"flip_change"``), see
    :mod:`vaereg_core.physics.sensitivity`.
    """
    start = time.perf_counter()
    array = np.asarray(stack)
    if array.ndim != 4:
        raise PhysicsError(f"a batch must be a 4-D array (N, nx, ny, nz), got shape {array.shape}")
    structures = np.stack([check_voxels(v) for v in array]) if len(array) else None
    if structures is None:
        return []
    hard, soft = _check_phase(hard, "hard"), _check_phase(soft, "soft")
    _check_choice("constants", constants, ("normal", "all"))
    _check_choice("discretization", discretization, DISCRETIZATIONS)
    _check_choice("dtype", dtype, DTYPES)
    _check_choice("method", method, METHODS)
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise PhysicsError(f"tolerance must be in (0, 1), got {tol!r}")
    if int(max_iter) < 1:
        raise PhysicsError(f"max_iter must be >= 1, got {max_iter!r}")
    backend_name, device_name = resolve_backend(backend, device)

    solved = _check_load_cases(load_cases, constants)
    cases = len(solved)
    names = tuple(LOAD_CASES[c] for c in solved)
    shape = structures.shape[1:]
    check_solve_memory(
        shape, structures=len(structures), cases=cases, backend=backend_name, discretization=discretization, dtype=dtype,
        device=device_name, max_gb=max_memory,
    )
    el = element(discretization)
    lam0, mu0 = reference_medium(hard, soft, method)
    green = inverse_symbol(stiffness_symbol(el, lam0, mu0, shape))
    # Richardson step of the basic scheme: optimal for the reference = mean of extremes.
    omega = 1.0
    lam, mu = _material_fields(structures, hard, soft)
    be = make_operator(backend_name, device_name, el, lam, mu, cases, green, dtype, workers=workers, operator=operator)
    strains = np.array([unit_strain(c) for _ in range(len(structures)) for c in solved])
    case_names = [f"{name}" if len(structures) == 1 else f"structure {s} {name}" for s in range(len(structures)) for name in names]
    # sqrt(N |C_hard E|^2 / M_0): the preconditioned norm of a load as large as the stiffest phase's.
    c_hard = hard.stiffness()
    scale = np.sqrt(structures[0].size * np.sum((strains @ c_hard) ** 2, axis=1) / (lam0 + 2 * mu0))
    with _blas_single_thread(backend_name):
        u, its, res = solve_cases(
            be, strains, tol=tol, max_iter=int(max_iter), method=method, omega=omega, cancel=cancel, case_names=case_names, load_scale=scale
        )
    if sensitivity:
        if discretization != "rotated":
            raise PhysicsError("sensitivities are given for the rotated scheme only (one strain per voxel)")
        fields = be.strain_field(u, strains)
    stress = be.mean_stress(u, strains)
    work = be.work_bytes()
    be.release()
    if not np.all(np.isfinite(stress)):
        # A converged residual with a non-finite stress is an overflow, never a stiffness to report.
        raise PhysicsError("the solver produced a non-finite stress (NaN or infinity); the result is unusable")
    seconds = (time.perf_counter() - start) / len(structures)

    results = []
    for s in range(len(structures)):
        raw = np.full((6, 6), np.nan)
        for index, c in enumerate(solved):
            raw[:, c] = stress[s * cases + index]
        sym = np.full((6, 6), np.nan)
        if cases == 6:
            sym = 0.5 * (raw + raw.T)
        else:
            # C_ij from column j, C_ji from column i: their mean where both were solved.
            both = np.stack([raw[:3, :3], raw[:3, :3].T])
            count = np.sum(~np.isnan(both), axis=0)
            sym[:3, :3] = np.where(count > 0, np.nansum(both, axis=0) / np.maximum(count, 1), np.nan)
            sym[3:, :3] = raw[3:, :3]
            sym[:3, 3:] = raw[3:, :3].T
        wanted = NORMAL_CONSTANTS if cases < 6 else NORMAL_CONSTANTS + tuple(c for c in ALL_CONSTANTS if c not in NORMAL_CONSTANTS)
        consts = {name: float(sym[int(name[1]) - 1, int(name[2]) - 1]) for name in wanted if not math.isnan(sym[int(name[1]) - 1, int(name[2]) - 1])}
        results.append(
            HomogenizationResult(
                stiffness=sym,
                stiffness_raw=raw,
                constants=consts,
                iterations={n: int(its[s * cases + c]) for c, n in enumerate(names)},
                residuals={n: float(res[s * cases + c]) for c, n in enumerate(names)},
                discretization=discretization,
                backend=backend_name,
                device=device_name,
                dtype=dtype,
                tol=float(tol),
                method=method,
                seconds=seconds,
                volume_fraction=float(structures[s].mean()),
                shape=tuple(int(v) for v in shape),
                hard=hard,
                soft=soft,
                work_bytes=int(work),
            )
        )
        if sensitivity:
            strain = {c: fields[s * cases + index] for index, c in enumerate(solved)}
            results[-1].extra["sensitivity"] = stiffness_derivative(strain, hard, soft)
            results[-1].extra["flip_change"] = phase_flip_change(strain, structures[s], hard, soft)
    return results


def homogenize(
    voxels: Any,
    hard: Phase = DEFAULT_HARD,
    soft: Phase = DEFAULT_SOFT,
    *,
    constants: str = "normal",
    tol: float = DEFAULT_TOL,
    discretization: str = "rotated",
    backend: str = "auto",
    device: str = "auto",
    dtype: str = "float64",
    max_iter: int = DEFAULT_MAX_ITER,
    method: str = "cg",
    cancel: Callable[[], bool] | None = None,
    workers: int | None = None,
    operator: str | None = None,
    max_memory: float | None = None,
    load_cases: Sequence[int] | None = None,
    sensitivity: bool = False,
) -> HomogenizationResult:
    """Effective elastic stiffness (GPa) of a periodic two-phase voxel structure.

    Parameters
    ----------
    voxels : (nx, ny, nz) array of 0/1 (bool or integer)
        1 = hard phase, 0 = soft phase; the structure tiles space periodically.
    hard, soft : Phase
        Phase materials (defaults: E = 120 and 2.4 GPa, nu = 0.3).
    constants : {"normal", "all"}
        ``"normal"``: the three normal load cases, giving C11 C22 C33 C12 C13 C23;
        ``"all"``: all six load cases and the full 6x6.
    tol : float
        Relative residual of the conjugate-gradient solve.
    discretization : {"rotated", "fe-full"}
        Willot's rotated scheme (= one-point hexahedra), or full-integration
        trilinear hexahedra (what conventional FE codes give).
    backend : {"auto", "numpy", "torch"}
    device : {"auto", "cpu", "cuda"}
    dtype : {"float64", "float32"}
    max_iter : int
        Iteration limit; :class:`~vaereg_core.errors.NotConvergedError` beyond it.
    method : {"cg", "basic"}
        Conjugate gradients (default) or the plain Moulinec–Suquet fixed point (for comparison).
    cancel : callable, optional
        Returns True to abort (polled every iteration); raises
        :class:`~vaereg_core.errors.SolverCancelled`.
    workers : int, optional
        FFT threads of the numpy backend (default: all cores of this process).
    operator : {"spectral", "gather"}, optional
        Force the operator form (for cross-checks; see :func:`make_operator`).
    max_memory : float, optional
        Memory limit in GB for the estimate checked before the solve
        (:mod:`vaereg_core.physics.memory`); default ``$VAEREG_MAX_MEMORY_GB`` or
        the memory available.
    load_cases : sequence of int, optional
        With ``constants="normal"``, solve only these normal load cases
        (0 = e11, 1 = e22, 2 = e33): C_ij comes from case j (or i), so C11 alone
        needs case 0 and a third of the work (:func:`load_cases_for`). The
        constants no solved case gives are left out of ``constants``.
    sensitivity : bool
        Also give each constant's response to every voxel's phase in ``extra``
        (rotated scheme; see :func:`homogenize_batch`).

    Returns
    -------
    HomogenizationResult

    Raises
    ------
    PhysicsError
        For invalid input, or a non-finite result; :class:`~vaereg_core.errors.NotConvergedError`
        at the iteration limit.
    MemoryBudgetError
        If the solve's estimated memory exceeds the limit (see ``max_memory``).

    Examples
    --------
    >>> import numpy as np
    >>> layers = np.zeros((4, 4, 4), np.uint8); layers[:2] = 1
    >>> r = homogenize(layers)
    >>> round(r.constants["C22"], 3), r.discretization
    (68.416, 'rotated')
    """
    return homogenize_batch(
        np.asarray(check_voxels(voxels))[None],
        hard,
        soft,
        constants=constants,
        tol=tol,
        discretization=discretization,
        backend=backend,
        device=device,
        dtype=dtype,
        max_iter=max_iter,
        method=method,
        cancel=cancel,
        workers=workers,
        operator=operator,
        max_memory=max_memory,
        load_cases=load_cases,
        sensitivity=sensitivity,
    )[0]
