"""A session's design report: its target, candidates, designs and annealing runs as a :class:`DesignReport`."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaereg_core.inverse.targets import Target, TargetError
from vaereg_core.reports.design_report import DesignReport, ReportEntry, accuracy_line, constants_of, solver_text, write_report
from vaereg_studio import __version__
from vaereg_studio.session.session import DesignSession


def session_report(session: DesignSession) -> DesignReport:
    """The report of ``session``'s work for its target (UI thread: it only gathers; pictures come later).

    Structures made for another target than the report's (an earlier search)
    are left out, and the provenance says how many.

    Raises
    ------
    TargetError
        No model, or nothing designed or searched yet.
    """
    loaded = session.model
    if loaded is None:
        raise TargetError("no model is loaded, so there is nothing to report")
    design = session.last_design
    target = _report_target(session)
    same = target.as_dict()
    entries: list[ReportEntry] = []
    left_out = 0
    if design is not None and design.target.as_dict() == same:
        for found in design.outcome.designs:
            d, c = found.design, found.candidate
            entries.append(ReportEntry(
                c.label, "verified design", c.voxels, _predicted(c.property_names, c.predicted, c.predicted_std), dict(d.constants),
                [f"verified by the solver ({solver_text(d.solver)})", f"proposed as {d.state.origin} (chain {d.state.chain})"],
            ))
    for entry in session.candidates:
        if entry.target.as_dict() != same:
            left_out += 1
            continue
        c, v = entry.found.candidate, entry.validation
        notes = [f"prior component {c.component + 1} (weight {c.weight:.3f}), {c.kind}"]
        if v is not None:
            notes.append(f"validated by the solver in {v.seconds:.1f} s ({solver_text(v.solver)})")
        entries.append(ReportEntry(c.label, "mixture candidate", c.voxels, _predicted(c.property_names, c.predicted, c.predicted_std), dict(v.constants) if v else {}, notes))
    for record in session.anneal_runs:
        if record.outcome is None or record.target.as_dict() != same:
            left_out += record.outcome is not None
            continue
        r, v = record.outcome.refinement, record.outcome.validation
        a = r.anneal
        notes = [f"from {record.start}, {a.iterations_done} of {record.settings.iterations} iterations" + (" (cancelled)" if a.cancelled else ""),
                 f"best model error {100 * a.best.value:.2f} %, prior weight {record.prior_weight:g}"]
        predicted = {n: (m, math.nan) for n, m in constants_of(target.names, r.predicted).items()}
        entries.append(ReportEntry(f"run {record.number} best", "annealing run", r.voxels, predicted, dict(v.constants) if v else {}, notes))
    provenance = {
        "model": loaded.identity,
        "model file": str(loaded.path),
        "predictions by": loaded.info.forward_description,
        "app": f"VAEReg Studio {__version__}",
    }
    if design is not None and design.target.as_dict() == same:
        r = design.outcome.result
        provenance["design run"] = (f"{r.solver_calls} solves in {r.seconds:.0f} s, goal {100 * r.settings.goal:g} % "
                                    f"{'met' if r.met else 'not met'}; budget {r.settings.seconds:g} s, final tol {r.settings.final_tol:g}")
    validation = next((e.validation for e in session.candidates if e.validation is not None), None)
    if validation is not None:
        provenance["validations"] = f"FFT solver, {solver_text(validation.solver)}"
    if left_out:
        provenance["left out"] = f"{left_out} structures made for another target"
    verdict = session.verdict if session.target is not None and session.target.as_dict() == same else None
    if verdict is None and design is not None and design.target.as_dict() == same:
        verdict = design.verdict
    return DesignReport(f"Design report: {target}", target, verdict, entries, provenance,
                        accuracy_line(loaded.path.name, loaded.info.has_forward))


def write_report_in_child(path: Path, report: DesignReport, overwrite: bool, report_progress: Callable[[Any], None]) -> Path:
    """:func:`write_report` as a child-process function (the pictures render off-screen there, away from Qt's OpenGL)."""
    return write_report(path, report, overwrite=overwrite)


def _report_target(session: DesignSession) -> Target:
    """The target of the latest work: the candidates', else the last design's, else the session's."""
    if session.candidates:
        return session.candidates[0].target
    if session.last_design is not None:
        return session.last_design.target
    if session.target is not None and session.anneal_runs:
        return session.target
    raise TargetError("no candidates, designs or annealing runs yet, so there is nothing to report")


def _predicted(names: tuple[str, ...], mean: Any, std: Any) -> dict[str, tuple[float, float]]:
    return {n: (float(m), float(s)) for n, m, s in zip(names, mean, std)}
