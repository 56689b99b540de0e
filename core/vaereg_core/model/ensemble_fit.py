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
    combine,
    coverage,
    file_checksum,
    fit_scales,
    fit_weights,
    manifest_path,
    write_manifest,
)
from vaereg_core.model.metrics import PAPER_TABLES_7_8, regression_metrics
from vaereg_core.dataset.table import DatasetError, read_table
from vaereg_core.model.splits import load_split
from vaereg_core.model.inference import LoadedModel, load_model
from vaereg_core.model.feature_head import FeatureHead, fit_feature_head
from vaereg_core.model.latent_svr import LatentSVR
from vaereg_core.symmetry import SYMMETRY_SETS, CubeSymmetry, constant_orbits, map_back, symmetries_for
from vaereg_core.voxel_io import atomic_paths

Progress = Callable[[str, int, int], None]
CHUNK = 32


@dataclass
class SplitPredictions:
    """Per-symmetry Gaussians of log C of one member on one split: mean and variance (N, T, P), truth (N, P) GPa.

    ``latent`` holds a generative member's posterior means (N, T, D), else None;
    ``features`` the trunk's features (N, T, F) when they were asked for.
    """

    mean: np.ndarray
    var: np.ndarray
    truth: np.ndarray
    latent: np.ndarray | None = None
    features: np.ndarray | None = None

    def part(self, columns: Sequence[int] | None = None) -> MemberPrediction:
        """Averaged over the symmetries at ``columns`` of the T axis (all by default)."""
        keep = slice(None) if columns is None else list(columns)
        return MemberPrediction.from_transformed(self.mean[:, keep], self.var[:, keep])


def cached_predictions(
    model: LoadedModel,
    data: str | os.PathLike,
    split: str | None,
    symmetries: Sequence[CubeSymmetry],
    cache: Path,
    *,
    tag: str,
    max_structures: int | None = None,
    progress: Progress | None = None,
    latents: bool = True,
    features: bool = False,
) -> SplitPredictions:
    """``model.predict_transformed`` (with latents for a generative model, unless not ``latents``; with the trunk's features if ``features``) over a split (None: every row of ``data``), resumable through ``.npz`` files in ``cache``.

    A finished cache of the same member, split and structures that holds
    every requested symmetry (e.g. all six permutations for the cyclic three)
    is used as it is.
    """
    # Properties first: the voxels (765 MB for the training split) are read only if a chunk is missing.
    structures = load_split(data, split, model.file.config, max_structures=max_structures, seed=0, voxels=False)
    columns = [ALL_PROPERTIES.index(n) for n in model.property_names]
    truth = structures.properties[:, columns]
    codes = np.array([s.code for s in symmetries])
    latents = latents and model.is_generative
    cache.mkdir(parents=True, exist_ok=True)
    # A whole file is named by its stem; a split by its name (the truths are compared as well).
    where = split or Path(data).stem
    stem = f"{model.file.checksum[:16]}-{where}-{len(truth)}"
    for stored_path in sorted(cache.glob(f"{stem}-*.npz")):
        with np.load(stored_path, allow_pickle=False) as stored:
            have = list(stored["codes"])
            if (set(codes) <= set(have) and np.isfinite(stored["mean"]).all() and np.allclose(stored["truth"], truth)
                    and (not latents or "latent" in stored) and (not features or "features" in stored)):
                keep = [have.index(c) for c in codes]
                return SplitPredictions(stored["mean"][:, keep], stored["var"][:, keep], truth, stored["latent"][:, keep] if latents else None,
                                        stored["features"][:, keep] if features else None)
    path = cache / f"{stem}-{tag}.npz"
    shape = (len(truth), len(symmetries), len(columns))
    arrays = {"mean": np.full(shape, np.nan), "var": np.full(shape, np.nan)}
    if latents:
        arrays["latent"] = np.full((len(truth), len(symmetries), model.latent_dim), np.nan)
    if features:
        # float16: 24 MB per network for 1,920 structures' cyclic copies; the head standardises them anyway.
        arrays["features"] = np.zeros((len(truth), len(symmetries), model.file.config.model.trunk_dense), np.float16)
    # Rows already predicted in this run's partial file (``path`` is among these) or in one of another size (a table
    # that a build has added to since: it keeps its rows sorted by sample, so new ones land anywhere), found by
    # their six solved constants.
    row_of = {row.tobytes(): i for i, row in enumerate(truth)}
    for stored_path in sorted(cache.glob(f"{model.file.checksum[:16]}-{where}-*-{tag}.npz")):
        with np.load(stored_path, allow_pickle=False) as stored:
            if not (np.array_equal(stored["codes"], codes) and set(arrays) <= set(stored)):
                continue
            done = np.isfinite(stored["mean"]).all(axis=(1, 2))
            old = np.array([row_of.get(row.tobytes(), -1) for row in stored["truth"]])
            keep = done & (old >= 0) & ~np.isfinite(arrays["mean"][np.maximum(old, 0)]).all(axis=(1, 2))
            for k in arrays:
                arrays[k][old[keep]] = stored[k][keep]
    for start in range(0, len(truth), CHUNK):
        rows = slice(start, start + CHUNK)
        if np.isfinite(arrays["mean"][rows]).all():
            continue
        if structures.voxels is None:
            structures = load_split(data, split, model.file.config, max_structures=max_structures, seed=0)
        out = model.predict_transformed(structures.voxels[rows], symmetries, latents=latents, features=features)
        for key, value in zip(("mean", "var") + (("latent",) if latents else ()) + (("features",) if features else ()), out):
            arrays[key][rows] = value
        with atomic_paths(path, overwrite=True) as (temp,):
            np.savez(temp, truth=truth, codes=codes, **arrays)
        if progress is not None:
            progress(f"{tag} {where}", min(start + CHUNK, len(truth)), len(truth))
    return SplitPredictions(arrays["mean"], arrays["var"], truth, arrays.get("latent"), arrays.get("features"))


def _mape(mean: np.ndarray, truth: np.ndarray) -> list[float]:
    return [regression_metrics(truth[:, p], np.exp(mean[:, p]))["MAPE"] for p in range(truth.shape[1])]


def symmetry_study(model: LoadedModel, data, cache: Path, structures: int, progress: Progress | None = None) -> dict[str, dict]:
    """MAPE on ``structures`` test structures for each symmetry set, from one run over all 48 (forward passes per structure beside)."""
    every = symmetries_for(model.property_names, "all")
    predictions = cached_predictions(model, data, "test", every, cache, tag="all", max_structures=structures, progress=progress, latents=False)
    rows = {}
    for which in SYMMETRY_SETS:
        subset = set(symmetries_for(model.property_names, which))
        columns = [i for i, s in enumerate(every) if s in subset]
        part = predictions.part(columns)
        rows[which] = {"passes": len(columns), "MAPE": _mape(part.mean, predictions.truth)}
    return rows


def svr_predictions(svr: LatentSVR, latents: SplitPredictions, symmetries: Sequence[CubeSymmetry]) -> SplitPredictions:
    """A latent-SVR member's per-symmetry predictions from its encoder's cached latents, in the network members' form."""
    mean = map_back(svr.predict_log(latents.latent), symmetries, svr.names)
    return SplitPredictions(mean, np.broadcast_to(svr.residual_var, mean.shape).copy(), latents.truth)


def fit_ensemble(
    model_path: str | os.PathLike,
    member_paths: Sequence[str | os.PathLike],
    data: str | os.PathLike,
    report: str | os.PathLike,
    *,
    symmetries: str = "permutations",
    latent_svr: bool = True,
    feature_head: bool = False,
    head_data: Sequence[str | os.PathLike] = (),
    cache: str | os.PathLike = "data/forward-cache",
    val_structures: int | None = None,
    test_structures: int | None = None,
    study_structures: int = 0,
    write: bool = True,
    device: str = "auto",
    progress: Progress | None = None,
) -> dict:
    """Fit the ensemble of ``model_path`` and ``member_paths`` on the validation split; report on the test split.

    With ``latent_svr`` and a generative ``model_path``, an SVR on its latent
    means (trained on the training split) joins as a member; with
    ``feature_head`` a head on all networks' trunk features side by side
    (cross-fitted on the validation split's symmetric copies;
    :func:`train_feature_head`), also trained on every structure of the
    ``head_data`` tables (the recipe of ``data`` with other seeds: structures
    no network and no other member was fitted on). Writes
    ``report/report.md`` and ``report/metrics.json``, and (``write``) the
    manifest beside ``model_path`` (and the SVR's ``.latent-svr.npz``, the
    head's ``.feature-head.npz``) so
    that loading that model attaches the ensemble. Returns the metrics.
    """
    started = time.perf_counter()
    if head_data and not feature_head:
        raise ValueError("head_data trains the feature head: ask for the feature head too")
    for extra_path in head_data:
        check_head_data(data, extra_path)
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
    val = [cached_predictions(m, data, "val", which, cache, tag=symmetries, max_structures=val_structures, progress=progress, features=feature_head) for m in models]
    test = [cached_predictions(m, data, "test", which, cache, tag=symmetries, max_structures=test_structures, progress=progress, features=feature_head) for m in models]
    members = [{"kind": "network", "file": p, "checksum": m.file.checksum, "label": label} for p, m, label in zip(paths, models, labels)]
    svr = None
    if latent_svr and models[0].is_generative:
        train = cached_predictions(models[0], data, "train", symmetries_for(names, "identity"), cache, tag="identity", progress=progress)
        svr = LatentSVR.fit(train.latent[:, 0], train.truth, names, models[0].file.checksum)
        held_out = np.log(val[0].truth) - svr.predict_log(val[0].latent[:, identity_column[0]])
        svr = svr.with_residual_var(held_out.var(0))
        val.append(svr_predictions(svr, val[0], which))
        test.append(svr_predictions(svr, test[0], which))
        labels.append(f"latent SVR ({paths[0].stem})")
        members.append({"kind": "latent-svr", "file": svr_path(paths[0]), "checksum": "", "label": labels[-1], "latents_from": 0})
    head = None
    if feature_head:
        per_table = [[cached_predictions(m, extra_path, None, which, cache, tag=symmetries, progress=progress, latents=False, features=True)
                      for m in models] for extra_path in head_data]
        extra = [stacked([t[i] for t in per_table]) for i in range(len(models))] if head_data else None
        head, out_of_fold, head_log = train_feature_head(val, which, names, tuple(m.file.checksum for m in models), extra=extra)
        head_log["head_data"] = {str(p): int(len(t[0].truth)) for p, t in zip(head_data, per_table)}
        val.append(out_of_fold)
        test.append(head_predictions(head, test, which))
        labels.append(f"feature head ({' + '.join(p.stem for p in paths)})")
        members.append({"kind": "feature-head", "file": head_path(paths[0]), "checksum": "", "label": labels[-1],
                        "features_from": list(range(len(models)))})
    truth_val, truth_test = val[0].truth, test[0].truth

    # Weights and scales tied over the constants the symmetries exchange: the ensemble stays equivariant.
    orbits = constant_orbits(names, which)
    weights = fit_weights([v.part() for v in val], truth_val, orbits=orbits)
    val_mean, val_var = combine([v.part() for v in val], weights)
    scale = fit_scales(val_mean, val_var, truth_val, orbits=orbits)
    test_mean, test_var = combine([t.part() for t in test], weights)

    rows: dict[str, dict] = {}
    for label, v, t in zip(labels, val, test):
        for tagged, columns in ((label, identity_column), (f"{label}, {symmetries} ({len(which)})", None)):
            own_val, own = v.part(columns), t.part(columns)
            own_scale = fit_scales(own_val.mean, own_val.variance, truth_val, orbits=constant_orbits(names, which if columns is None else ()))
            rows[tagged] = _figures(own.mean, own.variance, own_scale, truth_test)
    ensemble_label = f"ensemble ({' + '.join(labels)}), {symmetries}"
    rows[ensemble_label] = _figures(test_mean, test_var, scale, truth_test)
    study = {label: symmetry_study(m, data, cache, study_structures, progress) for label, m in zip(labels, models)} if study_structures else {}
    metrics = {
        "data": str(data),
        "properties": list(names),
        "members": [str(m["file"]) for m in members],
        "labels": labels,
        "symmetries": symmetries,
        "passes_per_structure": len(which) * len(models),
        "val_structures": int(len(truth_val)),
        "test_structures": int(len(truth_test)),
        "weights": {n: weights[:, i].tolist() for i, n in enumerate(names)},
        "sd_scale": dict(zip(names, scale.tolist())),
        "rows": rows,
        "ensemble": ensemble_label,
        "symmetry_study": study,
        "feature_head_training": head_log if head is not None else None,
        "study_structures": study_structures,
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    (out / "report.md").write_text(_markdown(metrics))
    if write:
        for member, stored in zip(members[len(models):], [x for x in (svr, head) if x is not None]):
            stored.save(member["file"])
            member["checksum"] = file_checksum(member["file"])
        fitted = {"split": "val", "structures": int(len(truth_val)), "data": str(data),
                  "feature_head_also_on": head_log["head_data"] if head is not None else {},
                  "test_MAPE": dict(zip(names, rows[ensemble_label]["MAPE"])),
                  "test_within_1sd": dict(zip(names, rows[ensemble_label]["within_1sd_recalibrated"])),
                  "test_within_2sd": dict(zip(names, rows[ensemble_label]["within_2sd_recalibrated"]))}
        write_manifest(manifest_path(paths[0]), members, names, weights, scale, symmetries, fitted)
    return metrics


def train_feature_head(
    val: Sequence[SplitPredictions], symmetries: Sequence[CubeSymmetry], names: tuple[str, ...], sources: tuple[str, ...],
    *, extra: Sequence[SplitPredictions] | None = None, folds: int = 2, seed: int = 0, **options,
) -> tuple[FeatureHead, SplitPredictions, dict]:
    """A feature head cross-fitted on the validation split's cached features (every symmetric copy a training sample).

    The split is cut into ``folds``; a head trained on the others (and on
    every ``extra`` structure, of which no out-of-fold prediction is needed)
    predicts each fold (its epoch chosen by that fold's MAPE), so the
    ensemble's weights and ± scale are fitted on out-of-fold predictions. The
    returned head is trained on the whole split and ``extra`` for the folds'
    mean best epoch count. Returns the head, the out-of-fold predictions and
    a training log.
    """
    sources_of = np.array([s.constant_sources(names) for s in symmetries])  # copy t's constant k is the original's sources_of[t, k]
    truth = val[0].truth
    log_targets = np.log(truth)[:, sources_of]
    features = _head_inputs(val, len(sources))
    extra_targets = np.log(extra[0].truth)[:, sources_of] if extra else log_targets[:0]
    extra_features = _head_inputs(extra, len(sources)) if extra else features[:0]
    order = np.random.default_rng(seed).permutation(len(truth))
    mean, var = np.empty(log_targets.shape), np.empty(log_targets.shape)
    log: dict = {"folds": []}
    for k in range(folds):
        held, rest = np.sort(order[k::folds]), np.sort(np.setdiff1d(order, order[k::folds]))

        def held_mape(head: FeatureHead) -> float:
            guess, _ = head.predict_log(features[held])
            return float(np.mean(_mape(map_back(guess, symmetries, names).mean(1), truth[held])))

        head, fold_log = fit_feature_head(np.concatenate([features[rest], extra_features]), np.concatenate([log_targets[rest], extra_targets]),
                                          names, sources, val_score=held_mape, seed=seed + k, **options)
        mean[held], var[held] = (map_back(a, symmetries, names) for a in head.predict_log(features[held]))
        log["folds"].append(fold_log)
    epochs = max(1, int(round(np.mean([f["best_epoch"] for f in log["folds"]]))))
    head, log["final"] = fit_feature_head(np.concatenate([features, extra_features]), np.concatenate([log_targets, extra_targets]),
                                          names, sources, seed=seed, **{**options, "epochs": epochs})
    log["best_epoch"] = epochs
    log["structures"] = {"val": int(len(truth)), "extra": int(len(extra_targets))}
    return head, SplitPredictions(mean, var, truth), log


def stacked(parts: Sequence[SplitPredictions]) -> SplitPredictions:
    """One member's predictions on several tables, one after the other along the structure axis."""
    def joined(key: str) -> np.ndarray | None:
        arrays = [getattr(p, key) for p in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)

    return SplitPredictions(*(joined(k) for k in ("mean", "var", "truth", "latent", "features")))


def check_head_data(data: str | os.PathLike, extra: str | os.PathLike) -> None:
    """Refuse an extra table for the feature head unless it is ``data``'s recipe and solver with another seed (any field count).

    The same seed would bring back the training split's structures (which the
    networks' features fit too well); another recipe, grid or material would
    teach the head structures the model is not for.
    """
    ours, theirs = read_table(data), read_table(extra)
    if theirs.recipe.seed == ours.recipe.seed:
        raise DatasetError(extra, f"has the seed of {data} ({ours.recipe.seed}): its structures include the training split; build it with another --seed")
    differ = sorted(k for k, v in ours.recipe.to_dict().items() if k not in ("seed", "n_fields") and theirs.recipe.to_dict().get(k) != v)
    differ += sorted(f"solver {k}" for k in ("discretization", "tol", "hard", "soft") if theirs.solver.get(k) != ours.solver.get(k))
    if differ:
        raise DatasetError(extra, f"is not the recipe of {data} with another seed: its {', '.join(differ)} differ")
    if len(theirs) == 0:
        raise DatasetError(extra, "holds no solved structure yet")


def head_predictions(head: FeatureHead, split: Sequence[SplitPredictions], symmetries: Sequence[CubeSymmetry]) -> SplitPredictions:
    """A feature head's per-symmetry predictions from its networks' cached features, in the network members' form."""
    mean, var = head.predict_log(_head_inputs(split, len(head.sources)))
    return SplitPredictions(map_back(mean, symmetries, head.names), map_back(var, symmetries, head.names), split[0].truth)


def _head_inputs(split: Sequence[SplitPredictions], networks: int) -> np.ndarray:
    """The first ``networks`` members' cached trunk features side by side, (N, T, networks · F): a head's input."""
    return np.concatenate([s.features for s in split[:networks]], axis=-1)


def head_path(model_path: str | os.PathLike) -> Path:
    """Where a model's feature head lives: ``NAME.feature-head.npz`` beside ``NAME.pt``."""
    path = Path(model_path)
    return path.with_name(path.stem + ".feature-head.npz")


def svr_path(model_path: str | os.PathLike) -> Path:
    """Where a model's latent SVR lives: ``NAME.latent-svr.npz`` beside ``NAME.pt``."""
    path = Path(model_path)
    return path.with_name(path.stem + ".latent-svr.npz")


def _figures(mean: np.ndarray, var: np.ndarray, scale: np.ndarray, truth: np.ndarray) -> dict[str, list[float]]:
    """MAPE and the coverage of the ± as given and after the validation split's scale."""
    return {
        "MAPE": _mape(mean, truth),
        "within_1sd": coverage(mean, var, truth, 1).tolist(),
        "within_2sd": coverage(mean, var, truth, 2).tolist(),
        "within_1sd_recalibrated": coverage(mean, var * scale**2, truth, 1).tolist(),
        "within_2sd_recalibrated": coverage(mean, var * scale**2, truth, 2).tolist(),
    }


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
