"""Provenance stored with a structure file, as a readable table of quantities with units.

Exported candidates, annealing results and verified designs store their
provenance (target, prediction, validation, model, solver, latent vector,
settings) as nested JSON metadata. :func:`provenance_rows` turns any such
mapping into rows of one line each, for the app's "Stored with the file" box
and for ``vaereg info``; keys it does not know are shown generically, so
nothing stored is hidden.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LATENT_SHOWN = 4
"""Leading latent values printed in the table; the whole vector is in the row's ``copy`` text."""

LONG_LIST = 8
"""Number lists longer than this are summarised (with the full list to copy), not printed."""

_MODEL_IDENTITY = re.compile(r"^(?P<name>.+?) \(sha256 (?P<digest>[0-9a-f]+)\)$")


@dataclass(frozen=True)
class ProvenanceRow:
    """One line of the provenance table.

    Parameters
    ----------
    quantity : str
        What the row is, with its unit where it has one (``Target (GPa)``).
    value : str
        The value on one line.
    copy : str or None
        Full machine-readable text behind a shortened value (the latent vector
        as JSON), for a "copy" button; None when ``value`` is all there is.
    """

    quantity: str
    value: str
    copy: str | None = None


def model_identity(path: str | os.PathLike) -> str:
    """A model file's name and the start of its SHA-256, e.g. ``default.pt (sha256 1a2b3c4d5e6f)``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{Path(path).name} (sha256 {digest.hexdigest()[:12]})"


def number(value: Any) -> str:
    """A number with four significant digits (integers and other values as they are)."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.4g}"


def percent(fraction: Any) -> str:
    """A relative value (0.021) as a percentage (``2.1 %``)."""
    return f"{100 * float(fraction):.1f} %" if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) else str(fraction)


def constants(values: Mapping[str, Any], std: Mapping[str, Any] | None = None) -> str:
    """``C11 28.6, C22 27.9`` (with ``± 1.2`` where a standard deviation is given)."""
    parts = []
    for name, value in values.items():
        spread = "" if not std or name not in std else f" ± {float(std[name]):.2g}"  # two digits of a spread are all it has
        parts.append(f"{name} {number(value)}{spread}")
    return ", ".join(parts)


def one_line(value: Any) -> str:
    """Any JSON value on one line: ``key value`` pairs for mappings, numbers shortened."""
    if isinstance(value, Mapping):
        return ", ".join(f"{key.replace('_', ' ')} {one_line(v)}" for key, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(one_line(v) for v in value) + "]"
    if value is None:
        return "—"
    return number(value)


def _is_numbers(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def _vector(values: Sequence[float]) -> ProvenanceRow:
    """A long number list: its size, norm and first values, the whole list to copy."""
    norm = math.sqrt(sum(float(v) ** 2 for v in values))
    head = ", ".join(f"{float(v):.3g}" for v in values[:LATENT_SHOWN])
    return ProvenanceRow("", f"{len(values)} values, norm {norm:.3g}: {head}, …", json.dumps([float(v) for v in values]))


def _model(value: Any) -> str:
    """The model by name and checksum prefix (a recorded path by its file name)."""
    text = str(value)
    match = _MODEL_IDENTITY.match(text)
    if match:
        return f"{Path(match['name']).name} · sha256 {match['digest']}"
    return Path(text).name if ("/" in text or "\\" in text) else text


def solver_line(solver: Mapping[str, Any], iterations: Any = None, seconds: Any = None) -> str:
    """The solver settings as one line, e.g. ``FFT, rotated, tol 0.0001, numpy; 38–52 iterations; 3.2 s``."""
    parts = ["FFT"]
    for key, value in solver.items():
        if key == "iterations":
            iterations = value if iterations is None else iterations
        elif key in ("discretization", "backend", "device", "dtype", "method"):
            parts.append(str(value))
        else:
            parts.append(f"{key.replace('_', ' ')} {number(value)}")
    text = ", ".join(parts)
    if isinstance(iterations, Mapping) and iterations:
        counts = [int(v) for v in iterations.values()]
        text += f"; {min(counts)}–{max(counts)} iterations" if min(counts) != max(counts) else f"; {counts[0]} iterations"
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        text += f"; {seconds:.1f} s"
    return text


def _validation(v: Mapping[str, Any]) -> list[ProvenanceRow]:
    rows = []
    if "constants_GPa" in v:
        rows.append(ProvenanceRow("Solver result (GPa)", constants(v["constants_GPa"])))
    if "mean_relative_error" in v:
        each = ", ".join(f"{n} {percent(e)}" for n, e in v.get("relative_error", {}).items())
        rows.append(ProvenanceRow("Error to target", f"{percent(v['mean_relative_error'])} mean" + (f" ({each})" if each else "")))
    rows.append(ProvenanceRow("Solver", solver_line(v.get("solver", {}), v.get("iterations"), v.get("seconds"))))
    return rows


def _candidate(m: Mapping[str, Any]) -> str:
    label = m.get("label", "?")
    if "component" in m:
        kind = f"sample {m.get('sample')} around" if m.get("kind") == "sample" else "mean of"
        text = f"{label}: {kind} mixture component {int(m['component']) + 1}"
        return text + (f", weight π {number(m['weight'])}" if "weight" in m else "")
    return f"{label}" + (f", rank {m['rank']}" if "rank" in m else "")


def _feasibility(f: Mapping[str, Any]) -> str:
    text = str(f.get("verdict", "?"))
    if isinstance(f.get("distance"), (int, float)):
        text += f", {percent(f['distance'])} from the nearest dataset structure"
    reasons = f.get("reasons") or []
    return text + (f" ({reasons[0]})" if reasons else "")


def _run(r: Mapping[str, Any]) -> str:
    parts = []
    if "goal" in r:
        parts.append(f"goal {percent(r['goal'])} {'met' if r.get('met') else 'not met'}")
    if "solver_calls" in r:
        parts.append(f"{r['solver_calls']} solver calls")
    if "seconds" in r:
        parts.append(f"{number(r['seconds'])} s")
    rest = {k: v for k, v in r.items() if k not in ("goal", "met", "solver_calls", "seconds")}
    return "; ".join(parts + ([one_line(rest)] if rest else []))


# Keys shown together in one row: (keys, quantity, how to write the value).
_GROUPS: tuple[tuple[tuple[str, ...], str, Callable[[Mapping[str, Any]], str]], ...] = (
    (("origin",), "Origin", lambda m: str(m["origin"])),
    (("proposal",), "Found by", lambda m: str(m["proposal"])),
    (("model",), "Model", lambda m: _model(m["model"])),
    (("label", "component", "weight", "kind", "sample", "rank"), "Candidate", _candidate),
    (("target_GPa", "extrapolated"), "Target (GPa)",
     lambda m: constants(m.get("target_GPa") or {}) + (f"; extrapolated: {', '.join(m['extrapolated'])}" if m.get("extrapolated") else "")),
    (("predicted_GPa", "predicted_std_GPa"), "Predicted by the model (GPa)", lambda m: constants(m.get("predicted_GPa") or {}, m.get("predicted_std_GPa"))),
    (("verified_GPa",), "Verified by the solver (GPa)", lambda m: constants(m["verified_GPa"])),
    (("mean_error", "errors"), "Error to target",
     lambda m: f"{percent(m.get('mean_error'))} mean" + (f" ({', '.join(f'{n} {percent(e)}' for n, e in m['errors'].items())})" if m.get("errors") else "")),
    (("volume_fraction",), "Hard-phase volume fraction", lambda m: f"{float(m['volume_fraction']):.4f}"),
    (("requested_volume_fraction",), "Requested volume fraction", lambda m: number(m["requested_volume_fraction"])),
    (("sigma",), "Filter σ (voxels)", lambda m: " × ".join(map(str, m["sigma"]))),
    (("run",), "Design run", lambda m: _run(m["run"]) if isinstance(m["run"], Mapping) else one_line(m["run"])),
    (("feasibility",), "Feasibility", lambda m: _feasibility(m["feasibility"]) if isinstance(m["feasibility"], Mapping) else one_line(m["feasibility"])),
    (("settings",), "Settings", lambda m: one_line(m["settings"])),
    (("seconds",), "Time (s)", lambda m: number(m["seconds"])),
    (("best_objective",), "Best objective (model)", lambda m: percent(m["best_objective"])),
    (("exported_by",), "Exported by", lambda m: str(m["exported_by"])),
)


def _generic(key: str, value: Any) -> ProvenanceRow:
    """A key the table does not know: its name in words, the unit its suffix names, the value on one line."""
    name = key.replace("_", " ")
    if name.endswith(" GPa"):
        name = name[: -len(" GPa")] + " (GPa)"
    name = name[:1].upper() + name[1:]
    if _is_numbers(value) and len(value) > LONG_LIST:
        return ProvenanceRow(name, _vector(value).value, _vector(value).copy)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
        return ProvenanceRow(name, f"{len(value)} entries", json.dumps(value, default=str))
    return ProvenanceRow(name, one_line(value))


def provenance_rows(metadata: Any) -> list[ProvenanceRow]:
    """The metadata stored with a file as table rows, known quantities first.

    Parameters
    ----------
    metadata : any
        What the file stored: usually a mapping; anything else (a foreign
        file's list or number) becomes one row of JSON.

    Examples
    --------
    >>> rows = provenance_rows({"target_GPa": {"C11": 28.6, "C22": 27.9}, "latent": [0.5] * 16, "seed": 3})
    >>> [(r.quantity, r.value) for r in rows][:2]
    [('Target (GPa)', 'C11 28.6, C22 27.9'), ('Latent vector', '16 values, norm 2: 0.5, 0.5, 0.5, 0.5, …')]
    >>> rows[1].copy[:10]
    '[0.5, 0.5,'
    """
    if not isinstance(metadata, Mapping):
        return [ProvenanceRow("Metadata", json.dumps(metadata, default=str))] if metadata not in (None, {}) else []
    rows: list[ProvenanceRow] = []
    used: set[str] = set()
    for keys, quantity, write in _GROUPS:
        if any(k in metadata for k in keys):
            try:
                rows.append(ProvenanceRow(quantity, write(metadata)))
                used.update(keys)
            except (TypeError, ValueError, KeyError, AttributeError):
                continue  # a foreign file's value of an unexpected type: shown generically below
    if "validation" in metadata and isinstance(metadata["validation"], Mapping):
        rows += _validation(metadata["validation"])
        used.add("validation")
    if "solver" in metadata and isinstance(metadata["solver"], Mapping):
        rows.append(ProvenanceRow("Solver", solver_line(metadata["solver"])))
        used.add("solver")
    if "latent" in metadata:
        rows.append(_latent_row(metadata["latent"]))
        used.add("latent")
    rows += [_generic(k, v) for k, v in metadata.items() if k not in used]
    return rows


def _latent_row(value: Any) -> ProvenanceRow:
    if _is_numbers(value):
        row = _vector(value)
        return ProvenanceRow("Latent vector", row.value, row.copy)
    return ProvenanceRow("Latent vector", one_line(value))


def format_table(rows: Sequence[ProvenanceRow]) -> str:
    """The rows as aligned ``quantity  value`` lines, for a terminal."""
    width = max((len(r.quantity) for r in rows), default=0)
    return "\n".join(f"{r.quantity:<{width}}  {r.value}" for r in rows)
