"""Model-free parts of inverse design: annealing, the PCA map, targets."""

import threading
import time

import numpy as np
import pytest

from vaereg_core.inverse.annealing import AnnealSettings, anneal_latent
from vaereg_core.inverse.latent_map import LatentMap
from vaereg_core.inverse.targets import TargetError, parse_target


def bowl(z):
    return float(np.sum((np.asarray(z) - 1.5) ** 2))


def test_annealing_lowers_the_objective_and_records_accepted_states():
    start = np.zeros(4)
    result = anneal_latent(bowl, start, AnnealSettings(iterations=300, start_temperature=1.0, end_temperature=1e-3, start_step=0.5, end_step=0.02, seed=1))
    assert result.best.value < 0.05 * bowl(start)
    assert result.iterations_done == 300 and 0 < result.accepted <= 300
    assert len(result.trajectory) == result.accepted + 1
    assert np.all(np.diff(result.best_per_iteration) <= 0)
    assert result.best.value == min(s.value for s in result.trajectory)
    assert [s.iteration for s in result.trajectory] == sorted(s.iteration for s in result.trajectory)


def test_annealing_is_reproducible_for_a_seed():
    s = AnnealSettings(iterations=50, seed=7)
    a = anneal_latent(bowl, np.zeros(3), s)
    b = anneal_latent(bowl, np.zeros(3), s)
    c = anneal_latent(bowl, np.zeros(3), AnnealSettings(iterations=50, seed=8))
    assert np.array_equal(a.best.z, b.best.z) and a.accepted == b.accepted
    assert not np.array_equal(a.best.z, c.best.z)


def test_annealing_stops_promptly_on_cancel():
    stop = threading.Event()

    def slow(z):
        time.sleep(0.05)
        return bowl(z)

    threading.Timer(0.3, stop.set).start()
    t = time.perf_counter()
    result = anneal_latent(slow, np.zeros(2), AnnealSettings(iterations=10_000), cancel=stop.is_set)
    stopped_after = time.perf_counter() - t - 0.3
    assert result.cancelled and result.iterations_done < 10_000
    assert stopped_after < 0.5


def test_progress_callback_sees_every_iteration():
    seen = []
    anneal_latent(bowl, np.zeros(2), AnnealSettings(iterations=20), progress=lambda i, n, cur, best: seen.append((i, n, best.value)))
    assert [s[0] for s in seen] == list(range(1, 21)) and all(s[1] == 20 for s in seen)


def test_settings_are_checked():
    with pytest.raises(ValueError):
        AnnealSettings(iterations=0)
    with pytest.raises(ValueError):
        AnnealSettings(start_temperature=0)


def test_latent_map_round_trip():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 16)) * np.linspace(3, 0.1, 16)
    m = LatentMap.fit(z, z[:, :1] * 10 + 40, ("C11",))
    assert m.coordinates.shape == (200, 2)
    ev = m.explained_variance
    assert ev[0] >= ev[1] > 0
    # Back-projection keeps the map point and takes the rest from the nearest structure.
    point = m.coordinates[17] + 0.01
    lifted = m.lift(point, fill="nearest")
    np.testing.assert_allclose(m.project(lifted)[0], point, atol=1e-9)
    far = m.pca.transform(lifted[None])[0][2:]
    np.testing.assert_allclose(far, m.pca.transform(z[17:18])[0][2:], atol=1e-9)
    zero = m.lift(point, fill="zero")
    np.testing.assert_allclose(m.pca.transform(zero[None])[0][2:], 0, atol=1e-9)
    # Any latent vector survives project + lift with itself as reference.
    np.testing.assert_allclose(m.lift(m.project(z[5])[0], reference=z[5]), z[5], atol=1e-9)
    with pytest.raises(ValueError):
        m.lift(point, fill="mean")


NAMES = ("C11", "C22", "C33", "C12", "C13", "C23")
RANGES = {n: (5.0, 110.0) for n in NAMES}


def test_targets_parse_and_flag_extrapolation():
    t = parse_target(["C11=35", "C22=40.5"], NAMES, RANGES)
    assert t.as_dict() == {"C11": 35.0, "C22": 40.5} and t.mask.sum() == 2 and not t.extrapolated
    assert parse_target("C11=35, C33=200", NAMES, RANGES).extrapolated == ("C33",)
    assert parse_target({"C12": 1.0}, NAMES, RANGES).extrapolated == ("C12",)
    np.testing.assert_allclose(t.relative_error(np.array([[35, 40.5, 1, 1, 1, 1], [38.5, 40.5, 0, 0, 0, 0]])), [0.0, 0.05])


@pytest.mark.parametrize(
    "spec, match",
    [
        ("E=35", "unknown properties E"),
        ("C11=nan", "finite"),
        ("C11=inf", "finite"),
        ("C11=-3", "positive"),
        ("C11", "NAME=VALUE"),
        ("C11=abc", "not a number"),
        ("", "no target"),
        (["C11=3", "C11=4"], "given twice"),
    ],
)
def test_bad_targets(spec, match):
    with pytest.raises(TargetError, match=match):
        parse_target(spec, NAMES, RANGES)
