"""The design session without a display: load → find → validate → design → anneal, events and the task runner."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
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
from vaereg_studio.session.session_file import SessionDocument, SessionFileError, read_session, write_session  # noqa: E402

TIMEOUT_S = 120.0


@pytest.fixture
def runner():
    runner = TaskRunner()
    yield runner
    runner.close()


@pytest.fixture
def session(tmp_path, monkeypatch, runner) -> Iterator[DesignSession]:
    """A session with the C11-only tiny model loaded (and its latent map of 24 structures)."""
    synthetic_resources(tmp_path / "resources", monkeypatch)
    (tmp_path / "models").mkdir()
    path = save_tiny_model(tmp_path / "models" / "c11.pt", components=2, properties=("C11",))
    session = DesignSession(runner, map_cache_dir=tmp_path / "cache")
    session.map_structures = 24
    session.load_model(path)
    runner.wait_idle(TIMEOUT_S)
    assert session.model is not None and session.model.path == path
    yield session
    session.close_model()  # its process (a window does this as it closes)


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

    session.set_target(parse_target({"C11": 30.0}, session.model.info.property_names))
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
    session.set_target(parse_target({"C11": 30.0}, session.model.info.property_names))
    session.find_candidates(0, 0)
    runner.wait_idle(TIMEOUT_S)
    first = list(session.candidates)
    session.validate(0)
    session.find_candidates(0, 1)  # cancels the validation of the old k1
    runner.wait_idle(TIMEOUT_S)
    # A warm validation worker can finish the tiny structure before the cancel arrives: then the old entry is
    # validated. Either way nothing of it reaches the new search's candidates.
    cancelled = first[0].status == "validating" and first[0].validation is None
    finished_first = first[0].status == "validated" and first[0].validation is not None
    assert cancelled or finished_first, first[0].status
    assert all(e.status == "not validated" and e.validation is None for e in session.candidates)
    assert all(e is not first[0] for e in session.candidates)


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


def test_nothing_runs_after_close(runner):
    ran = []
    runner.close()
    task = runner.submit(ran.append, 1, on_result=ran.append, on_error=ran.append)
    time.sleep(0.1)
    assert task.dropped and ran == [] and not runner.is_busy


def designed_session(session: DesignSession, runner: TaskRunner) -> DesignSession:
    """``session`` with a target and its verdict, two validated candidates, one design run and one annealing run."""
    session.set_target(parse_target({"C11": 30.0}, session.model.info.property_names))
    session.assess()
    session.find_candidates(0, 5)
    runner.wait_idle(TIMEOUT_S)
    session.validate_all()
    session.start_design(DesignSettings(seconds=60, max_solves=5, alternatives=1), None, lambda entry: None)
    session.start_anneal("candidate k2", session.candidates[1].found.candidate.z, AnnealSettings(iterations=4, seed=2), 0.1)
    runner.wait_idle(TIMEOUT_S)
    session.view_options.hard_colour = "#123456"
    return session


def test_save_and_reopen_restore_the_same_session(session, runner, tmp_path):
    designed_session(session, runner)
    path = tmp_path / "study.vaeregsession"
    saved: list[Path] = []
    session.save(path, on_saved=saved.append)
    runner.wait_idle(TIMEOUT_S)
    assert saved == [path] and path.is_file()
    assert not list(tmp_path.glob(".study*"))  # no temporary file left

    again = DesignSession(runner, map_cache_dir=tmp_path / "cache")
    again.map_structures = 24
    restored = record(again.events.restored)
    again.open(path)  # no model loaded: the session's own is loaded first
    runner.wait_idle(TIMEOUT_S)
    assert len(restored) == 1 and again.model.checksum == session.model.checksum

    assert again.target.as_dict() == session.target.as_dict() and again.verdict == session.verdict
    assert [e.label for e in again.candidates] == [e.label for e in session.candidates]
    for a, b in zip(again.candidates, session.candidates):
        np.testing.assert_array_equal(a.found.candidate.voxels, b.found.candidate.voxels)
        np.testing.assert_array_equal(a.found.candidate.z, b.found.candidate.z)
        assert a.validation == b.validation and a.status == b.status == "validated"
        assert a.found.thumbnail is not None  # made again on opening
    assert [r.status for r in session.design_runs] == ["done"]
    (run,), (first,) = again.design_runs, session.design_runs
    assert run.outcome.result.trajectory == first.outcome.result.trajectory
    assert run.outcome.result.settings == first.outcome.result.settings
    for a, b in zip(run.outcome.designs, first.outcome.designs):
        assert a.design.constants == b.design.constants and a.design.errors == b.design.errors
        np.testing.assert_array_equal(a.design.state.voxels, b.design.state.voxels)
        np.testing.assert_array_equal(a.path, b.path)
    (anneal,), (original,) = again.anneal_runs, session.anneal_runs
    assert anneal.settings == original.settings and anneal.prior_weight == 0.1 and anneal.status == "done"
    trajectory = [(s.iteration, s.value) for s in anneal.outcome.refinement.anneal.trajectory]
    assert trajectory == [(s.iteration, s.value) for s in original.outcome.refinement.anneal.trajectory]
    np.testing.assert_array_equal(anneal.outcome.refinement.voxels, original.outcome.refinement.voxels)
    assert anneal.outcome.validation == original.outcome.validation
    assert again.view_options == session.view_options

    # Saved again, the reopened session gives the same file contents.
    second = tmp_path / "again.vaeregsession"
    again.save(second)
    runner.wait_idle(TIMEOUT_S)
    assert read_session(second).content["view_options"] == read_session(path).content["view_options"]


def test_a_search_whose_predictions_are_pending_is_not_saved(session, runner, monkeypatch):
    # Reopened, such cards would wait for a prediction that never comes (and never be validated).
    import vaereg_studio.session.session as session_module

    release = threading.Event()
    predict = session_module.predict_found
    monkeypatch.setattr(session_module, "predict_found", lambda *args: release.wait(60) and predict(*args))
    session.set_target(parse_target({"C11": 30.0}, session.model.info.property_names))
    drawn = record(session.events.candidates)
    session.find_candidates(0, 0)
    deadline = time.monotonic() + TIMEOUT_S
    while not drawn and time.monotonic() < deadline:
        runner.process_pending(0.1)
    assert drawn and session.candidates and not session.candidates[0].found.candidate.is_predicted
    assert session.document().content["candidates"] == []
    release.set()
    runner.wait_idle(TIMEOUT_S)
    assert len(session.document().content["candidates"]) == len(session.candidates) > 0


def test_saving_never_replaces_a_file_unasked(session, runner, tmp_path):
    errors = record(session.events.error)
    path = tmp_path / "kept.vaeregsession"
    path.write_bytes(b"precious")
    session.save(path)
    runner.wait_idle(TIMEOUT_S)
    assert path.read_bytes() == b"precious"
    assert len(errors) == 1 and "file exists" in str(errors[0][1])


def small_document() -> SessionDocument:
    content = {"target": parse_target({"C11": 30.0}, ("C11",)), "values": np.arange(4.0), "view_options": {}}
    return SessionDocument({"name": "m.pt", "checksum": "ab" * 32, "path": "/nowhere/m.pt"}, content)


def test_a_session_file_round_trips_its_records(tmp_path):
    path = write_session(tmp_path / "s.vaeregsession", small_document())
    document = read_session(path)
    assert document.model == small_document().model
    assert document.content["target"].as_dict() == {"C11": 30.0}
    np.testing.assert_array_equal(document.content["values"], np.arange(4.0))


def rewrite_manifest(path: Path, change) -> None:
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("session.json"))
    change(manifest)
    replace_manifest(path, json.dumps(manifest))


def replace_manifest(path: Path, text: str) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["session.json"] = text.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: rewrite_manifest(p, lambda m: m.update(version=7)), "session format version 7; this app reads version 1"),
        (lambda p: rewrite_manifest(p, lambda m: m.update(format="other")), "not a VAEReg Studio session"),
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "damaged session"),
        (lambda p: p.write_bytes(b"PK\x03\x04" + bytes(200)), "damaged session"),
        (lambda p: rewrite_manifest(p, lambda m: m["content"]["dict"][0].__setitem__(1, {"record": "Popen", "fields": {}})), "unknown record type 'Popen'"),
        (lambda p: rewrite_manifest(p, lambda m: m["content"]["dict"][1].__setitem__(1, {"array": "a99"})), "arrays/a99.npy"),
        (lambda p: replace_manifest(p, '{"format": "vaereg-studio-session", "version": 1, "model": {}, "content": ' + "[" * 50_000 + "]" * 50_000 + "}"),
         "RecursionError"),
    ],
    ids=["version", "foreign", "truncated", "garbage", "code", "missing-array", "deep"],
)
def test_unknown_versions_and_damaged_files_are_one_clear_error(tmp_path, damage, message):
    path = write_session(tmp_path / "s.vaeregsession", small_document())
    damage(path)
    with pytest.raises(SessionFileError) as caught:
        read_session(path)
    text = str(caught.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_a_pickled_array_is_refused(tmp_path):
    path = write_session(tmp_path / "s.vaeregsession", small_document())
    buffer = io.BytesIO()
    np.save(buffer, np.array([object()], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("arrays/a0.npy", buffer.getvalue())  # a second member of that name shadows the first
    with pytest.raises(SessionFileError, match="damaged session"):
        read_session(path)


def test_a_session_of_a_missing_model_says_which(runner, tmp_path):
    session = DesignSession(runner)
    errors = record(session.events.error)
    empty = {"target": None, "verdict": None, "search_seed": 0, "candidates": [], "design_runs": [], "anneal_runs": [], "view_options": {}}
    path = write_session(tmp_path / "s.vaeregsession", SessionDocument(small_document().model, empty))
    session.open(path)
    runner.wait_idle(TIMEOUT_S)
    assert len(errors) == 1 and errors[0][0] == "Cannot open the session s.vaeregsession."
    assert "made with the model m.pt" in str(errors[0][1]) and "open that model first" in str(errors[0][1])


def test_a_session_without_its_records_is_damaged(runner, tmp_path):
    session = DesignSession(runner)
    errors = record(session.events.error)
    session.open(write_session(tmp_path / "s.vaeregsession", small_document()))
    runner.wait_idle(TIMEOUT_S)
    assert "damaged session: no anneal_runs, candidates, design_runs, search_seed, verdict" in str(errors[0][1])
