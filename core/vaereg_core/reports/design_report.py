"""The design report: one self-contained HTML file (images inline) of a target and the structures found for it.

It holds the target and its feasibility, every candidate and design with a
picture, the predicted constants (± sd), the solver's constants and the
errors to the target, the provenance (model name and checksum prefix,
solver settings) and the model card's accuracy line for the model. Written
by ``vaereg design --report`` and by the app's File → Export Report….
"""

from __future__ import annotations

import base64
import datetime
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaereg_core.inverse.feasibility import Feasibility
from vaereg_core.inverse.targets import Target
from vaereg_core.inverse.verified import DesignResult
from vaereg_core.reports.figures import structure_png
from vaereg_core.voxel_io import atomic_paths

MODEL_CARD = Path(__file__).resolve().parents[3] / "docs" / "model-card.md"
"""The model card of a source checkout (absent from an installed wheel: the report then says so)."""


@dataclass
class ReportEntry:
    """One structure of the report.

    Attributes
    ----------
    label : str
        ``k1``, ``d1``, ``run 2 best``, …
    kind : str
        What it is: "mixture candidate", "verified design", "annealing run".
    voxels : (n, n, n) ndarray
        The structure (1 = hard phase).
    predicted : dict
        ``{name: (mean, sd)}`` in GPa, the model's prediction (empty when not
        predicted; sd NaN when the prediction has none).
    verified : dict
        ``{name: GPa}`` computed by the solver (empty when not solved).
    notes : list of str
        Lines under the table (solver tolerance and time, origin, …).
    """

    label: str
    kind: str
    voxels: np.ndarray
    predicted: dict[str, tuple[float, float]] = field(default_factory=dict)
    verified: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class DesignReport:
    """Everything a design report shows.

    Attributes
    ----------
    title : str
        The page title.
    target : Target
        The target the structures were designed for.
    feasibility : Feasibility or None
        Its verdict (``None``: not assessed).
    entries : list of ReportEntry
        The structures, in the order shown.
    provenance : dict
        ``{label: text}`` rows: model, solver settings, app or command, …
    accuracy : str
        The model card's accuracy line for the model (or why there is none).
    """

    title: str
    target: Target
    feasibility: Feasibility | None
    entries: list[ReportEntry]
    provenance: dict[str, str]
    accuracy: str


def write_report(path: str | Path, report: DesignReport, overwrite: bool = False) -> Path:
    """Render the pictures and write the report to ``path`` atomically.

    Raises
    ------
    vaereg_core.voxel_io.VoxelFileError
        ``path`` exists and not ``overwrite``, or its folder is missing or read-only.
    """
    path = Path(path)
    text = report_html(report)
    with atomic_paths(path, overwrite=overwrite) as (temp,):
        temp.write_text(text, encoding="utf-8")
    return path


def report_html(report: DesignReport) -> str:
    """The report as one HTML document (each picture a base64 PNG ``data:`` URI)."""
    goals = report.target.as_dict()
    parts = [
        "<!DOCTYPE html>",
        f"<html lang='en'><head><meta charset='utf-8'><title>{_e(report.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(report.title)}</h1>",
        f"<p class='muted'>Written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}.</p>",
        "<h2>Target</h2>",
        _table(["constant", "target (GPa)"], [[n, f"{v:g}"] for n, v in goals.items()]),
        f"<p>Free (not constrained): {_e(', '.join(n for n in report.target.names if n not in goals) or 'none')}.</p>",
    ]
    if report.target.extrapolated:
        parts.append(f"<p class='warn'>Outside the training range: {_e(', '.join(report.target.extrapolated))}.</p>")
    if report.feasibility is not None:
        parts.append(f"<p class='verdict'>{_e(_sentence(report.feasibility.line()))}</p>")
    else:
        parts.append("<p>Feasibility: not assessed.</p>")
    parts.append(f"<h2>Structures ({len(report.entries)})</h2>")
    if not report.entries:
        parts.append("<p>No candidates or designs.</p>")
    for entry in report.entries:
        parts.append(_entry_html(entry, goals))
    parts += [
        "<h2>Provenance</h2>",
        _table(["", ""], [[k, v] for k, v in report.provenance.items()], header=False, css="provenance"),
        "<h2>Model accuracy</h2>",
        f"<p>{_e(report.accuracy)}</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _entry_html(entry: ReportEntry, goals: Mapping[str, float]) -> str:
    png, what = structure_png(entry.voxels)
    image = base64.b64encode(png).decode("ascii")
    names = list(dict.fromkeys([*entry.predicted, *entry.verified]))
    rows = []
    for name in names:
        mean_sd = entry.predicted.get(name)
        solved = entry.verified.get(name)
        error = "free"
        if name in goals:
            value = solved if solved is not None else (mean_sd[0] if mean_sd else None)
            error = "—" if value is None else f"{100 * (value - goals[name]) / goals[name]:+.1f} %" + ("" if solved is not None else " (model)")
        rows.append([name, _mean_sd(mean_sd), f"{solved:.2f}" if solved is not None else "—", error])
    errors = [abs(entry.verified[n] - g) / g for n, g in goals.items() if n in entry.verified]
    summary = f"mean |error| by the solver {100 * float(np.mean(errors)):.2f} %" if errors else "not solved by the solver"
    volume_fraction = float(np.mean(entry.voxels))
    size = " × ".join(str(k) for k in np.shape(entry.voxels))
    notes = "".join(f"<li>{_e(n)}</li>" for n in entry.notes)
    return (
        f"<section class='entry' id='{_e(_anchor(entry.label))}'><h3>{_e(entry.label)} <span class='muted'>· {_e(entry.kind)}</span></h3>"
        f"<figure><img alt='{_e(entry.label)}: {_e(what)}' src='data:image/png;base64,{image}'><figcaption>{_e(what)}</figcaption></figure>"
        f"<div class='numbers'><p>{size} voxels · hard-phase volume fraction {volume_fraction:.3f} · {summary}</p>"
        + _table(["constant", "predicted (GPa)", "solver (GPa)", "error to target"], rows)
        + (f"<ul>{notes}</ul>" if notes else "")
        + "</div></section>"
    )


def verified_design_report(result: DesignResult, feasibility: Feasibility | None, model: Any, model_identity: str, command: str) -> DesignReport:
    """The report of a verified design run (``vaereg design --report``): its designs, best first.

    ``model`` predicts each design's constants (the column beside the
    solver's); ``model_identity`` names the file and its checksum prefix.
    """
    names = tuple(model.property_names)
    entries = []
    for rank, d in enumerate(result.designs, start=1):
        mean, std = model.predict(d.state.voxels)
        notes = [f"verified by the solver ({solver_text(d.solver)})", f"proposed as {d.state.origin} (chain {d.state.chain})"]
        entries.append(ReportEntry(f"d{rank}", "verified design", d.state.voxels,
                                   {n: (float(m), float(s)) for n, m, s in zip(names, mean, std)}, dict(d.constants), notes))
    s = result.settings
    provenance = {
        "model": model_identity,
        "predictions by": model.describe_forward(),
        "design run": f"{result.solver_calls} solves in {result.seconds:.0f} s, goal {100 * s.goal:g} % {'met' if result.met else 'not met'}"
                      f"{' (cancelled)' if result.cancelled else ''}; budget {s.seconds:g} s, loop tol {s.loop_tol:g}, final tol {s.final_tol:g}, seed {s.seed}",
        "command": command,
    }
    return DesignReport(f"Design report: {result.target}", result.target, feasibility, entries, provenance,
                        accuracy_line(model_identity.split(" (")[0], model.forward is not None))


def accuracy_line(model_name: str, ensemble: bool, card: Path = MODEL_CARD) -> str:
    """The model card's accuracy row for a model, as one sentence.

    The row is the default forward ensemble's when the model predicts through
    one (``ensemble``), else the first row naming ``model_name`` in backticks.
    """
    if not card.is_file():
        return f"No model card at {card}; the accuracy of {model_name} is not stated here."
    lines = card.read_text(encoding="utf-8").splitlines()
    header: list[str] = []
    wanted = "ensemble" if ensemble else f"`{model_name}`"
    for number, line in enumerate(lines):
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if not header:
            header = cells
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        if wanted in cells[0] and (wanted != "ensemble" or "default" in cells[0]):
            section = next((lines[i].lstrip("# ") for i in range(number, -1, -1) if lines[i].startswith("#")), card.name)
            figures = ", ".join(f"{h} {c}" for h, c in zip(header[1:], cells[1:]) if c)
            return f"{cells[0]} — {figures} ({card.name}: {section}; MAPE % on the test split unless the column says otherwise)."
    return f"The model card ({card.name}) has no accuracy row for {model_name}."


def constants_of(names: Sequence[str], values: Sequence[float]) -> dict[str, float]:
    """``{name: value}`` without the missing (NaN) values."""
    return {n: float(v) for n, v in zip(names, values) if not math.isnan(float(v))}


def solver_text(solver: Mapping[str, Any]) -> str:
    """Solver settings in one line, e.g. ``tol 0.0001, device cpu``."""
    return ", ".join(f"{k} {v}" for k, v in solver.items() if k != "iterations") or "defaults"


def _table(columns: list[str], rows: list[list[str]], header: bool = True, css: str = "") -> str:
    head = "<tr>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{css}'>{head}{body}</table>" if css else f"<table>{head}{body}</table>"


def _mean_sd(mean_sd: tuple[float, float] | None) -> str:
    if mean_sd is None:
        return "—"
    mean, sd = mean_sd
    return f"{mean:.1f}" if math.isnan(sd) else f"{mean:.1f} ± {sd:.1f}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _anchor(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.4em 0; } td, th { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.entry { display: flex; gap: 1.2em; align-items: flex-start; border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; margin: 0.8em 0; }
.entry h3 { margin: 0 0 0.3em; width: 100%; } .entry { flex-wrap: wrap; } .numbers { flex: 1; min-width: 320px; }
.provenance td { text-align: left; vertical-align: top; }
figure { margin: 0; } figcaption, .muted { color: #777; font-size: 0.85em; }
.warn { color: #b35c00; font-weight: bold; } .verdict { font-weight: bold; }
"""
