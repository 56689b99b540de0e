"""Fit a forward ensemble on the validation split, report it on the test split, and write its manifest.

The long part is running each member over every symmetric copy of every
validation and test structure; it is chunked into a resumable cache
(``CACHE/<member checksum>-<split>-<symmetries>.npz``, written atomically after
each chunk), so a killed run continues where it stopped and a second report
costs nothing. The report puts each member alone, each member averaged over
the symmetries, and the ensemble side by side with the paper's rows, for MAPE
and for the coverage of the ± (1 and 2 standard deviations); an optional study
runs all 48 symmetries on a few test structures and tabulates what each
symmetry set gains for its cost.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vaereg_core.model.config import ALL_PROPERTIES
from vaereg_core.model.ensemble import (
    MemberPrediction,
    coverage,
    combine,
    fit_scales,
    fit_weights,
    manifest_path,
    write_manifest,
)
from vaereg_core.model.evaluation import PAPER_TABLES_7_8, load_split, regression_metrics
from vaereg_core.model.inference import LoadedModel, load_model
from vaereg_core.symmetry import SYMMETRY_SETS, CubeSymmetry, symmetries_for

Progress = Callable[[str, int, int], None]
CHUNK = 32


@dataclass
class SplitPredictions:
    """Per-symmetry Gaussians of log C of one member on one split: mean and variance (N, T, P), truth (N, P) GPa."""

    mean: np.ndarray
    var: np.ndarray
    truth: np.ndarray

    def part(self, columns: Sequence[int] | None = None) -> MemberPrediction:
        """Averaged over the symmetries at ``columns`` of the T axis (all by default)."""
        keep = slice(None) if columns is None else list(columns)
        return MemberPrediction.from_transformed(self.mean[:, keep], self.var[:, keep])


def cached_predictions(
    model: LoadedModel,
    data: str | os.PathLike,
    split: str,
    symmetries: Sequence[CubeSymmetry],
    cache: Path,
    *,
    tag: str,
    max_structures: int | None = None,
    progress: Progress | None = None,
) -> SplitPredictions:
    """``model.predict_transformed`` over a split, resumable through ``.npz`` files in ``cache``.

    A finished cache of the same member, split and structures that holds
    every requested symmetry (e.g. all six permutations for the cyclic three)
    is used as it is.
    """
    structures = load_split(data, split, model.file.config, max_structures=max_structures, seed=0)
    columns = [ALL_PROPERTIES.index(n) for n in model.property_names]
    truth = structures.properties[:, columns]
    codes = np.array([s.code for s in symmetries])
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"{model.file.checksum[:16]}-{split}-{len(truth)}"
    for stored_path in sorted(cache.glob(f"{stem}-*.npz")):
        with np.load(stored_path, allow_pickle=False) as stored:
            have = list(stored["codes"])
            if set(codes) <= set(have) and np.isfinite(stored["mean"]).all() and np.allclose(stored["truth"], truth):
                keep = [have.index(c) for c in codes]
                return SplitPredictions(stored["mean"][:, keep], stored["var"][:, keep], truth)
    path = cache / f"{stem}-{tag}.npz"
    shape = (len(truth), len(symmetries), len(columns))
    mean, var = np.full(shape, np.nan), np.full(shape, np.nan)
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            if stored["mean"].shape == shape and np.array_equal(stored["codes"], codes) and np.allclose(stored["truth"], truth):
                mean, var = stored["mean"].copy(), stored["var"].copy()
    for start in range(0, len(truth), CHUNK):
        rows = slice(start, start + CHUNK)
        if np.isfinite(mean[rows]).all():
            continue
        mean[rows], var[rows] = model.predict_transformed(structures.voxels[rows], symmetries)
        temp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(temp, mean=mean, var=var, truth=truth, codes=codes)
        os.replace(temp, path)
        if progress is not None:
            progress(f"{tag} {split}", min(start + CHUNK, len(truth)), len(truth))
    return SplitPredictions(mean, var, truth)


def _mape(mean: np.ndarray, truth: np.ndarray) -> list[float]:
    return [regression_metrics(truth[:, p], np.exp(mean[:, p]))["MAPE"] for p in range(truth.shape[1])]


def symmetry_study(model: LoadedModel, data, cache: Path, structures: int, progress: Progress | None = None) -> dict[str, dict]:
    """MAPE on ``structures`` test structures for each symmetry set, from one run over all 48 (forward passes per structure beside)."""
    every = symmetries_for(model.property_names, "all")
    predictions = cached_predictions(model, data, "test", every, cache, tag="all", max_structures=structures, progress=progress)
    rows = {}
    for which in SYMMETRY_SETS:
        subset = set(symmetries_for(model.property_names, which))
        columns = [i for i, s in enumerate(every) if s in subset]
        part = predictions.part(columns)
        rows[which] = {"passes": len(columns), "MAPE": _mape(part.mean, predictions.truth)}
    return rows


def fit_ensemble(
    model_path: str | os.PathLike,
    member_paths: Sequence[str | os.PathLike],
    data: str | os.PathLike,
    report: str | os.PathLike,
    *,
    symmetries: str = "permutations",
    cache: str | os.PathLike = "data/forward-cache",
    val_structures: int | None = None,
    test_structures: int | None = None,
    study_structures: int = 0,
    write: bool = True,
    device: str = "auto",
    progress: Progress | None = None,
) -> dict:
    """Fit the ensemble of ``model_path`` and ``member_paths`` on the validation split; report on the test split.

    Writes ``report/report.md`` and ``report/metrics.json``, and (``write``)
    the manifest beside ``model_path`` so that loading that model attaches the
    ensemble. Returns the metrics.
    """
    started = time.perf_counter()
    paths = [Path(model_path), *map(Path, member_paths)]
    models = [load_model(p, device, ensemble=False) for p in paths]
    names = tuple(models[0].property_names)
    for p, m in zip(paths[1:], models[1:]):
        if tuple(m.property_names) != names:
            raise ValueError(f"{p} predicts {', '.join(m.property_names)}; {paths[0]} predicts {', '.join(names)}")
    labels = [_label(m, p) for m, p in zip(models, paths)]
    cache = Path(cache)
    which = symmetries_for(names, symmetries)
    identity_column = [which.index(CubeSymmetry())]
    val = [cached_predictions(m, data, "val", which, cache, tag=symmetries, max_structures=val_structures, progress=progress) for m in models]
    test = [cached_predictions(m, data, "test", which, cache, tag=symmetries, max_structures=test_structures, progress=progress) for m in models]
    truth_val, truth_test = val[0].truth, test[0].truth

    weights = fit_weights([v.part() for v in val], truth_val)
    val_mean, val_var = combine([v.part() for v in val], weights)
    scale = fit_scales(val_mean, val_var, truth_val)
    test_mean, test_var = combine([t.part() for t in test], weights)
    test_var = test_var * scale**2

    rows: dict[str, dict] = {}
    for label, v, t in zip(labels, val, test):
        for tagged, columns in ((label, identity_column), (f"{label}, {symmetries} ({len(which)})", None)):
            own_val, own = v.part(columns), t.part(columns)
            var_val = own_val.aleatoric + own_val.symmetry
            own_scale = fit_scales(own_val.mean, var_val, truth_val)
            var = own.aleatoric + own.symmetry
            rows[tagged] = {
                "MAPE": _mape(own.mean, truth_test),
                "within_1sd": coverage(own.mean, var, truth_test, 1).tolist(),
                "within_2sd": coverage(own.mean, var, truth_test, 2).tolist(),
                "within_1sd_recalibrated": coverage(own.mean, var * own_scale**2, truth_test, 1).tolist(),
                "within_2sd_recalibrated": coverage(own.mean, var * own_scale**2, truth_test, 2).tolist(),
            }
    ensemble_label = f"ensemble ({' + '.join(labels)}), {symmetries}"
    rows[ensemble_label] = {
        "MAPE": _mape(test_mean, truth_test),
        "within_1sd": coverage(test_mean, test_var / scale**2, truth_test, 1).tolist(),
        "within_2sd": coverage(test_mean, test_var / scale**2, truth_test, 2).tolist(),
        "within_1sd_recalibrated": coverage(test_mean, test_var, truth_test, 1).tolist(),
        "within_2sd_recalibrated": coverage(test_mean, test_var, truth_test, 2).tolist(),
    }
    study = {label: symmetry_study(m, data, cache, study_structures, progress) for label, m in zip(labels, models)} if study_structures else {}
    metrics = {
        "data": str(data),
        "properties": list(names),
        "members": [str(p) for p in paths],
        "labels": labels,
        "symmetries": symmetries,
        "passes_per_structure": len(which) * len(models),
        "val_structures": int(len(truth_val)),
        "test_structures": int(len(truth_test)),
        "weights": {n: weights[:, i].tolist() for i, n in enumerate(names)},
        "sd_scale": dict(zip(names, scale.tolist())),
        "rows": rows,
        "symmetry_study": study,
        "study_structures": study_structures,
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    (out / "report.md").write_text(_markdown(metrics))
    if write:
        fitted = {"split": "val", "structures": int(len(truth_val)), "data": str(data),
                  "test_MAPE": dict(zip(names, rows[ensemble_label]["MAPE"])),
                  "test_within_1sd": dict(zip(names, rows[ensemble_label]["within_1sd_recalibrated"])),
                  "test_within_2sd": dict(zip(names, rows[ensemble_label]["within_2sd_recalibrated"]))}
        write_manifest(manifest_path(paths[0]), paths, [m.file.checksum for m in models], labels, names, weights, scale, symmetries, fitted)
    return metrics


def _label(model: LoadedModel, path: Path) -> str:
    return f"{'VAE-Reg regressor' if model.is_generative else 'Reg-only CNN'} ({path.stem})"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _markdown(m: dict) -> str:
    names = m["properties"]
    paper = {k: v for k, v in PAPER_TABLES_7_8.items() if k in ("VAE-Reg", "Reg-only")} if len(names) == 6 else {}
    lines = [
        "# Forward predictions: symmetry averaging and the ensemble",
        "",
        f"Dataset `{m['data']}`; weights and ± scales fitted on {m['val_structures']} validation structures, figures on "
        f"{m['test_structures']} test structures. Symmetry set `{m['symmetries']}`: {m['passes_per_structure']} forward passes "
        f"per structure for the ensemble. Regenerate with `vaereg fit-ensemble` (the command in docs/model-card.md); {m['seconds']} s.",
        "",
        "## MAPE % on the test split",
        "",
        _row(["model", *names]),
        _row(["---"] * (len(names) + 1)),
    ]
    for label, row in m["rows"].items():
        lines.append(_row([label, *(f"{v:.2f}" for v in row["MAPE"])]))
    for label, row in paper.items():
        lines.append(_row([f"paper, {label} (Table 8)", *row]))
    lines += ["", "## The ± on the test split: fraction of truths within 1 sd / 2 sd (%)", "",
              "As the networks give it, and recalibrated (one scale per constant fitted on the validation split). "
              "A well-calibrated Gaussian has 68 / 95 %.", "",
              _row(["model", "", *names]), _row(["---"] * (len(names) + 2))]
    for label, row in m["rows"].items():
        for kind, suffix in (("as given", ""), ("recalibrated", "_recalibrated")):
            cells = [f"{100 * a:.0f} / {100 * b:.0f}" for a, b in zip(row["within_1sd" + suffix], row["within_2sd" + suffix])]
            lines.append(_row([label, kind, *cells]))
    lines += ["", "Ensemble weights per constant (members in the order above) and ± scales:", "",
              _row(["", *names]), _row(["---"] * (len(names) + 1))]
    for i, label in enumerate(m["labels"]):
        lines.append(_row([label, *(f"{m['weights'][n][i]:.2f}" for n in names)]))
    lines.append(_row(["± scale", *(f"{m['sd_scale'][n]:.2f}" for n in names)]))
    if m["symmetry_study"]:
        lines += ["", f"## Which symmetries are worth their cost ({m['study_structures']} test structures, all 48 run once)", "",
                  _row(["member", "set", "passes", *names]), _row(["---"] * (len(names) + 3))]
        for label, study in m["symmetry_study"].items():
            for which, row in study.items():
                lines.append(_row([label, which, str(row["passes"]), *(f"{v:.2f}" for v in row["MAPE"])]))
    return "\n".join(lines) + "\n"
