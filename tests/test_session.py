"""The design session without a display: load → find → validate → design → anneal, events and the task runner."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from app_helpers import synthetic_resources

pytest.importorskip("vaereg_core.model.inference")
from inverse_helpers import save_tiny_model  # noqa: E402

from vaereg_core.inverse.annealing import AnnealSettings  # noqa: E402
from vaereg_core.inverse.targets import parse_target  # noqa: E402
from vaereg_core.inverse.verified import DesignSettings  # noqa: E402
from vaereg_studio.session import DesignSession, TaskRunner  # noqa: E402
from vaereg_studio.session.records import MapState  # noqa: E402

TIMEOUT_S = 120.0


@pytest.fixture
def runner():
    runner = TaskRunner()
    yield runner
    runner.close()


@pytest.fixture
def session(tmp_path, monkeypatch, runner) -> DesignSession:
    """A session with the C11-only tiny model loaded (and its latent map of 24 structures)."""
    synthetic_resources(tmp_path / "resources", monkeypatch)
    (tmp_path / "models").mkdir()
    path = save_tiny_model(tmp_path / "models" / "c11.pt", components=2, properties=("C11",))
    session = DesignSession(runner, map_cache_dir=tmp_path / "cache")
    session.map_structures = 24
    session.load_model(path)
    runner.wait_idle(TIMEOUT_S)
    assert session.model is not None and session.model.path == path
    return session


def record(signal) -> list:
    seen: list = []
    signal.connect(lambda *args: seen.append(args[0] if len(args) == 1 else args))
    return seen


def test_runner_supersedes_by_key_and_reports_errors(runner):
    results, errors = [], []
    started = threading.Event()

    def slow(value):
        started.set()
        time.sleep(0.3)
        return value

    runner.submit(slow, "first", key="k", on_result=results.append, on_error=errors.append)
    started.wait(5)
    runner.submit(lambda: "second", key="k", on_result=results.append, on_error=errors.append)
    runner.submit(lambda: 1 / 0, on_result=results.append, on_error=errors.append)
    busy = record(runner.busy)
    runner.wait_idle(10)
    assert results == ["second"]  # the first result came later and was dropped
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)
    assert busy == [False] and not runner.is_busy


def test_results_after_close_are_dropped(runner):
    results = []
    runner.submit(time.sleep, 0.2, on_result=results.append, on_error=results.append)
    runner.close(wait_s=1.0)
    assert runner.process_pending(0.5) == 0 and results == []


def test_load_find_validate_design_anneal(session, runner):
    events = session.events
    candidates, validations = record(events.candidates), record(events.validation)
    assert isinstance(session.map, MapState) and len(session.map.map.latents) == 24 and session.map.computed

    session.set_target(parse_target({"C11": 30.0}, session.model.model.property_names))
    session.assess()
    runner.wait_idle(TIMEOUT_S)
    assert session.verdict is not None and session.verdict.verdict in ("achievable", "outside the data")

    session.find_candidates(samples_per_component=1, seed=3)
    runner.wait_idle(TIMEOUT_S)
    assert [e.label for e in session.candidates] == ["k1", "k1-s1", "k2", "k2-s1"]
    assert candidates == [session.candidates]

    session.validate_all()
    assert all(e.status == "validating" for e in session.candidates)
    runner.wait_idle(TIMEOUT_S)
    for entry in session.candidates:
        assert entry.status == "validated" and entry.validation.constants["C11"] > 0
    assert sorted(set(validations)) == [0, 1, 2, 3]

    progress: list[dict] = []
    run = session.start_design(DesignSettings(seconds=60, max_solves=6, alternatives=1), session.verdict, progress.append)
    runner.wait_idle(TIMEOUT_S)
    assert run.status == "done" and session.last_design is run
    design = run.outcome.designs[0]
    assert design.validation.constants["C11"] > 0 and run.outcome.result.solver_calls <= 8
    assert any("best_error" in entry for entry in progress)

    anneal = session.start_anneal("candidate k1", session.candidates[0].found.candidate.z, AnnealSettings(iterations=5), 0.0)
    runner.wait_idle(TIMEOUT_S)
    assert anneal.status == "done" and anneal.outcome.refinement.anneal.iterations_done == 5
    assert anneal.outcome.validation is not None

    shown = record(events.structure)
    session.decode(session.map.map.coordinates[2])
    runner.wait_idle(TIMEOUT_S)
    assert len(shown) == 1 and shown[0].metadata["origin"] == "latent map point"


def test_a_new_search_drops_the_old_candidates_validations(session, runner):
    session.set_target(parse_target({"C11": 30.0}, session.model.model.property_names))
    session.find_candidates(0, 0)
    runner.wait_idle(TIMEOUT_S)
    first = list(session.candidates)
    session.validate(0)
    session.find_candidates(0, 1)  # cancels the validation of the old k1
    runner.wait_idle(TIMEOUT_S)
    assert first[0].status == "validating" and first[0].validation is None
    assert all(e.status == "not validated" for e in session.candidates)


def test_a_model_that_cannot_load_is_one_error_and_the_old_model_stays(session, runner, tmp_path):
    errors = record(session.events.error)
    before = session.model
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    session.load_model(bad)
    runner.wait_idle(TIMEOUT_S)
    assert session.model is before
    assert len(errors) == 1 and errors[0][0] == "Cannot load the model bad.pt."


def test_design_without_target_says_why(session):
    from vaereg_core.inverse.targets import TargetError

    with pytest.raises(TargetError, match="no usable target"):
        session.start_design(DesignSettings(), None, lambda entry: None)


def test_map_point_decoding_needs_a_map(session, runner):
    session.map = None
    session.decode(np.zeros(2))
    assert not runner.is_busy


def test_the_session_imports_no_qt():
    import subprocess
    import sys

    code = "import sys, vaereg_studio.session; print(any(m.startswith('PySide6') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    assert out.stdout.strip() == "False"
