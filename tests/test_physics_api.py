"""Physics API: phases, bad inputs, non-convergence, cancel, backends, provenance, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vaereg_core.cli import main
from vaereg_core.errors import NotConvergedError, PhysicsError, SolverCancelled
from vaereg_core.microstructure import filter_index, generate
from vaereg_core.physics import DEFAULT_HARD, DEFAULT_SOFT, Phase, homogenize
from vaereg_core.physics.bounds import hashin_shtrikman_c11
from vaereg_core.physics.elements import element, inverse_symbol, stiffness_symbol


@pytest.fixture(scope="module")
def voxels() -> np.ndarray:
    return generate(seed=1, field_index=0, filter_index=filter_index((2, 1, 4)), volume_fraction=0.5, size=11)


def test_phase_constructors_and_checks():
    p = Phase.from_young(120.0, 0.3)
    assert p.young == pytest.approx(120.0) and p.poisson == pytest.approx(0.3)
    q = Phase.from_lame(p.lam, p.mu)
    assert q == p
    for e, nu in [(0.0, 0.3), (-1.0, 0.3), (10.0, 0.5), (10.0, -1.0), (10.0, 0.7), (float("nan"), 0.3)]:
        with pytest.raises(PhysicsError):
            Phase.from_young(e, nu)
    with pytest.raises(PhysicsError):
        Phase.from_lame(1.0, -1.0)
    with pytest.raises(Exception):
        p.lam = 3.0  # frozen


@pytest.mark.parametrize(
    "bad,words",
    [
        (np.zeros((4, 4), np.uint8), "3-D"),
        (np.zeros((2, 3, 4, 5), np.uint8), "3-D"),
        (np.full((3, 3, 3), 2, np.uint8), "binary"),
        (np.full((3, 3, 3), 0.5), "binary"),
        (np.full((3, 3, 3), np.nan), "NaN"),
        (np.zeros((0, 3, 3), np.uint8), "empty"),
        (np.array([[["a"]]]), "numbers"),
    ],
)
def test_bad_structures_are_refused_with_a_reason(bad, words):
    with pytest.raises(PhysicsError, match=words):
        homogenize(bad)


def test_bad_options_are_refused(voxels):
    for kwargs in [
        {"discretization": "spectral"},
        {"backend": "jax"},
        {"dtype": "float16"},
        {"constants": "some"},
        {"tol": 0.0},
        {"tol": 2.0},
        {"max_iter": 0},
        {"device": "tpu"},
        {"backend": "numpy", "device": "cuda"},
    ]:
        with pytest.raises(PhysicsError):
            homogenize(voxels, **kwargs)
    with pytest.raises(PhysicsError, match="Phase"):
        homogenize(voxels, hard=(120.0, 0.3))


def test_bool_and_float_binary_inputs_are_accepted(voxels):
    a = homogenize(voxels.astype(bool), tol=1e-6).constants["C11"]
    b = homogenize(voxels.astype(np.float32), tol=1e-6).constants["C11"]
    assert a == pytest.approx(b, rel=1e-12)


def test_non_convergence_raises_with_the_residual(voxels):
    with pytest.raises(NotConvergedError) as info:
        homogenize(voxels, tol=1e-10, max_iter=3)
    err = info.value
    assert err.iterations == 3 and err.residual > 1e-10 and err.tol == 1e-10
    assert err.load_case in ("e11", "e22", "e33")
    assert "residual" in str(err)


def test_cancel_stops_the_solver(voxels):
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(SolverCancelled):
        homogenize(voxels, cancel=cancel)


@pytest.mark.parametrize("discretization", ["rotated", "fe-full"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numpy_and_torch_backends_agree(voxels, discretization, dtype):
    a = homogenize(voxels, backend="numpy", device="cpu", dtype=dtype, discretization=discretization, tol=1e-6)
    b = homogenize(voxels, backend="torch", device="cpu", dtype=dtype, discretization=discretization, tol=1e-6)
    assert a.backend == "numpy" and b.backend == "torch"
    rel = 1e-8 if dtype == "float64" else 1e-4
    for name, value in a.constants.items():
        assert b.constants[name] == pytest.approx(value, rel=rel)


def test_spectral_and_gather_forms_of_the_rotated_scheme_agree(voxels):
    a = homogenize(voxels, constants="all", operator="spectral", tol=1e-10).stiffness
    b = homogenize(voxels, constants="all", operator="gather", tol=1e-10).stiffness
    assert np.max(np.abs(a - b)) < 1e-8 * np.max(np.abs(a))


def test_float32_reaches_tight_tolerance_accurately(voxels):
    a = homogenize(voxels, dtype="float64", tol=1e-7)
    b = homogenize(voxels, dtype="float32", tol=1e-6)
    assert max(b.residuals.values()) <= 2e-6
    for name, value in a.constants.items():
        assert b.constants[name] == pytest.approx(value, rel=1e-4)


def test_basic_scheme_converges_to_the_same_answer_more_slowly(voxels):
    cg = homogenize(voxels, tol=1e-6)
    basic = homogenize(voxels, tol=1e-6, method="basic")
    assert max(basic.iterations.values()) > max(cg.iterations.values())
    for name, value in cg.constants.items():
        assert basic.constants[name] == pytest.approx(value, rel=1e-4)


def test_result_records_provenance_and_serialises(voxels):
    r = homogenize(voxels, tol=1e-5)
    assert r.stiffness.shape == (6, 6) and r.stiffness.dtype == np.float64
    assert np.isnan(r.stiffness[3:, 3:]).all()
    assert set(r.constants) == {"C11", "C22", "C33", "C12", "C13", "C23"}
    assert set(r.iterations) == set(r.residuals) == {"e11", "e22", "e33"}
    assert all(res <= 2e-5 for res in r.residuals.values())
    d = json.loads(json.dumps(r.to_dict()))
    for key in ("discretization", "backend", "dtype", "tol", "seconds", "iterations", "residuals", "constants", "device"):
        assert key in d
    assert d["discretization"] == "rotated" and d["tol"] == 1e-5
    full = homogenize(voxels, constants="all")
    assert len(full.constants) == 21 and not np.isnan(full.stiffness).any()


def test_auto_backend_on_cpu(voxels):
    r = homogenize(voxels, device="cpu")
    assert r.backend == "numpy" and r.device == "cpu"


def test_green_operator_inverts_the_reference_stiffness():
    for disc in ("rotated", "fe-full"):
        for shape in [(4, 5, 6), (5, 5, 5)]:
            sym = stiffness_symbol(element(disc), 2.0, 1.0, shape)
            inv = inverse_symbol(sym)
            full = np.empty_like(sym)
            for n, (i, j) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
                full[i, j] = full[j, i] = inv[n]
            prod = np.einsum("ij...,jk...->ik...", sym, full)
            # Identity on every non-singular frequency (the projector elsewhere).
            trace = np.einsum("ii...->...", prod)
            assert np.all(np.isclose(trace, 3) | np.isclose(trace, 0) | np.isclose(trace, 2) | np.isclose(trace, 1))
            assert np.isclose(trace[1:], 3).sum() > 0.9 * trace[1:].size


def test_element_symbol_equals_direct_fourier_sum():
    """K_hat = Phi^H K_e Phi from the element matrices, for both discretisations."""
    shape = (4, 5, 6)
    for disc in ("rotated", "fe-full"):
        el = element(disc)
        sym = stiffness_symbol(el, 1.3, 0.7, shape)
        ke = (1.3 * el.k_lam + 0.7 * el.k_mu).reshape(8, 3, 8, 3)
        rng = np.random.default_rng(0)
        for _ in range(5):
            k = [rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(0, shape[2] // 2 + 1)]
            xi = 2 * np.pi * np.array(k) / np.array(shape)
            phase = np.array([np.exp(1j * xi @ np.array([(a >> 2) & 1, (a >> 1) & 1, a & 1])) for a in range(8)])
            direct = np.einsum("a,aibj,b->ij", phase.conj(), ke, phase)
            assert np.allclose(direct, sym[:, :, k[0], k[1], k[2]], atol=1e-12)


def test_cli_prints_six_constants_within_hs_bounds(tmp_path, capsys):
    v = generate(seed=2, field_index=0, filter_index=filter_index((2, 2, 2)), volume_fraction=0.5, size=13)
    path = tmp_path / "s.npy"
    np.save(path, v)
    assert main(["homogenize", str(path), "--tol", "1e-4"]) == 0
    out = capsys.readouterr().out
    for name in ("C11", "C22", "C33", "C12", "C13", "C23", "iterations", "rotated"):
        assert name in out
    assert main(["homogenize", str(path), "--json", "--all", "--discretization", "fe-full", "--backend", "numpy"]) == 0
    d = json.loads(capsys.readouterr().out)
    lo, hi = hashin_shtrikman_c11(DEFAULT_HARD, DEFAULT_SOFT, v.mean())
    assert d["discretization"] == "fe-full" and len(d["constants"]) == 21
    assert lo < d["constants"]["C11"] < hi


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    path = tmp_path / "grey.npy"
    np.save(path, np.full((3, 3, 3), 0.5))
    assert main(["homogenize", str(path)]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err
    path2 = tmp_path / "ok.npy"
    np.save(path2, generate(seed=0, field_index=0, filter_index=0, volume_fraction=0.5, size=7))
    assert main(["homogenize", str(path2), "--tol", "1e-12", "--max-iter", "2"]) == 2
    assert "not converged" in capsys.readouterr().err


def test_many_solves_do_not_leak(voxels):
    import tracemalloc

    homogenize(voxels)
    tracemalloc.start()
    homogenize(voxels)
    first, _ = tracemalloc.get_traced_memory()
    for _ in range(5):
        homogenize(voxels)
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert after - first < 200_000


def test_a_subset_of_load_cases_gives_the_same_constants_for_less_work():
    from vaereg_core.physics import homogenize, load_cases_for

    voxels = (np.random.default_rng(5).random((10, 10, 10)) < 0.45).astype(np.uint8)
    full = homogenize(voxels, tol=1e-7).constants
    expected_cases = {("C11",): (0,), ("C22", "C12"): (1,), ("C33", "C12"): (0, 2), ("C11", "C22", "C33"): (0, 1, 2)}
    for names, cases in expected_cases.items():
        assert load_cases_for(names) == cases
        part = homogenize(voxels, tol=1e-7, load_cases=cases)
        assert len(part.iterations) == len(cases)
        for n in names:
            assert part.constants[n] == pytest.approx(full[n], rel=1e-6), n
    assert load_cases_for(["C11"]) == (0,) and set(homogenize(voxels, load_cases=(0,)).constants) == {"C11", "C12", "C13"}
    with pytest.raises(PhysicsError, match="load_cases"):
        homogenize(voxels, load_cases=(3,))
