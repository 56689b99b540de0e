"""Evaluation report: trained runs against the paper's baselines, on the same test split.

Rows: each run (VAE-Reg with its prior, Reg-only CNN, vanilla VAE), each
generative run's latent means + GPR / SVR / linear regression, two-point
statistics + PCA + polynomial regression (the PyMKS recipe, scikit-learn
``fit``/``transform`` steps), and Voigt / Reuss / Hill from the volume fraction.
Metrics per property (MAPE %, MASE % = mean absolute error / mean value, R²)
on the whole test split and on the paper's range C11 ∈ [20, 80] GPa. Runs of
the same configuration trained on different split seeds are aggregated as
mean ± std, as in the paper's protocol (10 repeats there). Each generative
run's decoder is checked too (:mod:`vaereg_core.model.reconstruction`): test
structures against their reconstructions, with a figure.

The Voigt/Reuss/Hill estimates use the default phases of
:mod:`vaereg_core.physics.phases` (E = 120 / 2.4 GPa, ν = 0.3).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import LinearRegression
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
from sklearn.svm import SVR

from vaereg_core.atomic_files import atomic_paths
from vaereg_core.dataset.table import read_table
from vaereg_core.model.config import ALL_PROPERTIES, RunConfig
from vaereg_core.model.inference import LoadedModel, load_model
from vaereg_core.model.losses import lag_window, two_point_correlation
from vaereg_core.model.metrics import (
    PAPER_RANGE,
    PAPER_TABLE_1,
    PAPER_TABLES_7_8,
    regression_metrics,
)
from vaereg_core.model.reconstruction import (
    ReconstructionQuality,
    reconstruction_figure,
    reconstruction_quality,
)
from vaereg_core.model.splits import Split, load_split
from vaereg_core.model.training import RunFolderError
from vaereg_core.physics.phases import DEFAULT_HARD, DEFAULT_SOFT, Phase

GPR_MAX_TRAIN = 2000  # exact GPR is O(n³): a random subset of the training split
RECONSTRUCTION_COUNT, RECONSTRUCTION_SOLVED = 32, 8  # test structures spread over the split; those solved

def voigt_reuss_hill(
    volume_fraction: np.ndarray, names: tuple[str, ...], hard_phase: Phase = DEFAULT_HARD, soft_phase: Phase = DEFAULT_SOFT
) -> dict[str, np.ndarray]:
    """Voigt, Reuss and Hill estimates of the named constants from the hard-phase volume fraction, (N, P) each."""
    hard, soft = hard_phase.stiffness(), soft_phase.stiffness()
    phi = np.asarray(volume_fraction, np.float64)[:, None, None]
    voigt = phi * hard + (1 - phi) * soft
    reuss = np.linalg.inv(phi * np.linalg.inv(hard) + (1 - phi) * np.linalg.inv(soft))
    index = {"C11": (0, 0), "C22": (1, 1), "C33": (2, 2), "C12": (0, 1), "C13": (0, 2), "C23": (1, 2)}
    pick = lambda c: np.stack([c[:, i, j] for i, j in (index[n] for n in names)], axis=1)  # noqa: E731
    v, r = pick(voigt), pick(reuss)
    return {"Voigt": v, "Reuss": r, "Hill": (v + r) / 2}


class TwoPointFeatures(BaseEstimator, TransformerMixin):
    """Periodic two-point autocorrelation of the hard phase, lags up to ``window`` per axis, flattened.

    The first step of the PyMKS structure-property recipe; stateless.
    """

    def __init__(self, window: int = 10, batch_size: int = 64) -> None:
        self.window = window
        self.batch_size = batch_size

    def fit(self, X, y=None):
        return self

    def transform(self, X) -> np.ndarray:
        out = []
        for start in range(0, len(X), self.batch_size):
            x = torch.from_numpy(np.asarray(X[start : start + self.batch_size], np.float32))[:, None]
            out.append(lag_window(two_point_correlation(x), self.window).numpy())
        return np.concatenate(out)


def two_point_regression(components: int = 10, degree: int = 2) -> Pipeline:
    """Two-point statistics -> PCA -> polynomial regression (the PyMKS recipe)."""
    return make_pipeline(TwoPointFeatures(), PCA(n_components=components, random_state=0), PolynomialFeatures(degree), LinearRegression())


def latent_regressors() -> dict[str, object]:
    """The paper's regressors on VAE latent means (inputs standardised)."""
    kernel = ConstantKernel() * RBF(1.0) + WhiteKernel(1e-2)
    return {
        "linear": make_pipeline(StandardScaler(), LinearRegression()),
        "GPR": make_pipeline(StandardScaler(), GaussianProcessRegressor(kernel, normalize_y=True, random_state=0)),
        "SVR": make_pipeline(StandardScaler(), MultiOutputRegressor(SVR(C=10.0, epsilon=0.01))),
    }


@dataclass
class Run:
    """A trained run folder."""

    path: Path
    config: RunConfig
    data: Path
    kind: str

    @classmethod
    def read(cls, path: str | os.PathLike, data: str | os.PathLike | None = None) -> "Run":
        """A run folder, or a model file (e.g. a shipped one) with the dataset its metadata names or ``data``."""
        path = Path(path)
        if path.is_file():
            from vaereg_core.model.checkpoint import load_model_file

            model = load_model_file(path)
            if data is None and "data" not in model.metadata:
                raise RunFolderError(path, "the model file does not name its dataset; pass --data")
            return cls(path, model.config, Path(data if data is not None else model.metadata["data"]), model.kind)
        record_file = path / "config.json"
        if not record_file.is_file() or not (path / "model.pt").is_file():
            raise RunFolderError(path, "not a trained run folder (config.json and model.pt expected)")
        record = json.loads(record_file.read_text())
        return cls(path, RunConfig.from_dict(record["config"]), Path(data if data is not None else record["data"]), record["kind"])

    @property
    def label(self) -> str:
        m, loss = self.config.model, self.config.loss
        if self.kind == "regression-only":
            return "Reg-only CNN"
        if m.prior == "standard":
            return "VAE"
        prior = "Gaussian" if m.prior == "gaussian" else f"GM K={m.components}"
        volume_fraction = " + φ" if loss.volume_fraction_weight else ""
        return f"VAE-Reg ({prior}, {loss.reconstruction}{volume_fraction})"


def _predict_log_target(estimator, x_train, y_train, x_test) -> np.ndarray:
    """Fit on log-stiffness (as the networks are) and predict in GPa."""
    estimator.fit(x_train, np.log(y_train))
    return np.exp(estimator.predict(x_test).reshape(len(x_test), -1))


def baseline_predictions(train: Split, test: Split, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Voigt/Reuss/Hill and two-point statistics + PCA + regression on the test split, (N, P) GPa each."""
    columns = [ALL_PROPERTIES.index(n) for n in names]
    rows = {f"{k} (volume fraction)": v for k, v in voigt_reuss_hill(test.volume_fraction, names).items()}
    rows["2pt stats + PCA + poly. reg."] = _predict_log_target(two_point_regression(), train.voxels, train.properties[:, columns], test.voxels)
    return rows


def latent_predictions(model: LoadedModel, label: str, train: Split, test: Split, seed: int = 0) -> dict[str, np.ndarray]:
    """Regressors on a generative model's latent means, trained on the training split."""
    columns = [ALL_PROPERTIES.index(n) for n in model.property_names]
    z_train, z_test = model.encode(train.voxels)[0], model.encode(test.voxels)[0]
    y_train = train.properties[:, columns]
    rows = {}
    for name, estimator in latent_regressors().items():
        x, y = z_train, y_train
        if name == "GPR" and len(x) > GPR_MAX_TRAIN:
            keep = np.random.default_rng(seed).choice(len(x), GPR_MAX_TRAIN, replace=False)
            x, y = x[keep], y[keep]
        rows[f"{label} latent + {name}"] = _predict_log_target(estimator, x, y, z_test)
    return rows


def evaluate_runs(
    runs: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    baselines: bool = True,
    device: str = "auto",
    data: str | os.PathLike | None = None,
    subset: str | None = None,
) -> str:
    """Write ``report.md``, ``metrics.json`` and parity plots for trained runs; return the Markdown.

    ``runs`` are run folders or model files. All must come from the same
    dataset file (``data`` names it instead of what they recorded); baselines
    are fitted once per split seed. ``subset`` evaluates every run (and fits
    the baselines) on that subset's splits instead of the one it was trained
    on, e.g. a model of all structures on the two-morphology test structures.
    """
    loaded = [Run.read(r, data) for r in runs]
    datas = {r.data for r in loaded}
    if len(datas) != 1:
        raise ValueError(f"runs come from different dataset files: {', '.join(map(str, sorted(datas)))}")
    data = datas.pop()
    names = tuple(n for n in ALL_PROPERTIES if any(n in r.config.model.properties for r in loaded))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # results[label] = list over split seeds of (true (N, P), predicted (N, P), property names, in_range (N,))
    results: dict[str, list] = defaultdict(list)
    reconstructions: dict[str, ReconstructionQuality] = {}
    solver_options = read_table(data).solver_options()
    by_split: dict = defaultdict(list)
    test_sizes = []
    for r in loaded:
        by_split[(r.config.train.split_seed, subset or r.config.train.subset)].append(r)
    for (split_seed, split_subset), group in by_split.items():
        reference = dataclasses.replace(group[0].config, train=dataclasses.replace(group[0].config.train, subset=split_subset))
        test = load_split(data, "test", reference)
        test_sizes.append(len(test.voxels))
        in_range = (test.properties[:, 0] >= PAPER_RANGE[0]) & (test.properties[:, 0] <= PAPER_RANGE[1])
        train = load_split(data, "train", reference) if baselines else None
        columns = [ALL_PROPERTIES.index(n) for n in names]
        if baselines:
            for label, pred in baseline_predictions(train, test, names).items():
                results[label].append((test.properties[:, columns], pred, names, in_range))
        for r in group:
            model = load_model(r.path, device)
            cols = [ALL_PROPERTIES.index(n) for n in model.property_names]
            if r.label != "VAE":  # the vanilla VAE's regressor is untrained; only its latents are used
                results[r.label].append((test.properties[:, cols], model.predict(test.voxels)[0], model.property_names, in_range))
            if baselines and model.is_generative:
                for label, pred in latent_predictions(model, r.label, train, test).items():
                    results[label].append((test.properties[:, cols], pred, model.property_names, in_range))
            if model.is_generative and r.label not in reconstructions:
                pick = np.unique(np.linspace(0, len(test.voxels) - 1, RECONSTRUCTION_COUNT).astype(int))
                quality, decoded = reconstruction_quality(
                    model, test.voxels[pick], test.properties[pick][:, cols], physics_count=RECONSTRUCTION_SOLVED, **solver_options
                )
                reconstructions[r.label] = quality
                reconstruction_figure(out / _figure_name(r.label), f"{r.label}: {r.path}", test.voxels[pick], decoded)
    table = _aggregate(results)
    with atomic_paths(out / "metrics.json") as (temp,):
        temp.write_text(json.dumps(
            {"data": str(data), "subset": subset, "test_structures": test_sizes, "runs": [str(r.path) for r in loaded], "metrics": table,
             "reconstruction": {label: asdict(q) for label, q in reconstructions.items()}},
            indent=1,
        ))
    for name in names:
        _parity_plot(out / f"parity_{name}.png", name, results)
    text = _markdown(table, names, loaded, data, test_sizes, reconstructions, subset)
    with atomic_paths(out / "report.md") as (temp,):
        temp.write_text(text)
    return text


def _figure_name(label: str) -> str:
    return "reconstruction_" + re.sub(r"[^a-z0-9]+", "-", label.lower().replace("φ", "phi")).strip("-") + ".png"


def _aggregate(results: dict[str, list]) -> dict:
    """{label: {property: {region: {metric: [mean, std, repeats]}}}}."""
    table: dict = {}
    for label, repeats in results.items():
        per: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
        for true, pred, names, in_range in repeats:
            for j, name in enumerate(names):
                for region, mask in (("all", slice(None)), ("paper range", in_range)):
                    for metric, value in regression_metrics(true[mask, j], pred[mask, j]).items():
                        per[name][region][metric].append(value)
        table[label] = {
            name: {region: {m: [float(np.mean(v)), float(np.std(v)), len(v)] for m, v in metrics.items()} for region, metrics in regions.items()}
            for name, regions in per.items()
        }
    return table


def _fmt(entry: list, digits: int) -> str:
    mean, std, n = entry
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if n > 1 else "")


def _markdown(
    table: dict, names: tuple[str, ...], runs: list[Run], data: Path, test_sizes: list[int],
    reconstructions: dict[str, ReconstructionQuality], subset: str | None = None,
) -> str:
    splits = len(test_sizes)
    where = f"test split of the {subset} subset, whatever each run was trained on" if subset else "test split"
    where += f" ({' / '.join(map(str, sorted(set(test_sizes))))} structures)"
    lines = [
        "# Forward prediction: VAE-Regression against the paper's baselines",
        "",
        f"Dataset `{data}`, {where}; {len(runs)} run(s) over {splits} split seed(s)"
        + (" (mean ± std over repeats)" if splits > 1 else " (a single split: no std)")
        + ". MAPE and MASE in %, MASE = mean absolute error / mean value. "
        f"'paper range': test structures with C11 in [{PAPER_RANGE[0]:g}, {PAPER_RANGE[1]:g}] GPa.",
        "",
        "Runs: " + "; ".join(f"`{r.path}` ({r.config.name}, {r.kind})" for r in runs),
        "",
    ]
    for name in names:
        lines += [f"## {name}", "", "| method | MAPE | MASE | R² | MAPE (paper range) | MASE (paper range) | R² (paper range) |", "|---|---|---|---|---|---|---|"]
        for label in sorted(table, key=lambda l: table[l].get(name, {}).get("all", {}).get("MAPE", [np.inf])[0]):
            if name not in table[label]:
                continue
            a, p = table[label][name]["all"], table[label][name]["paper range"]
            lines.append(f"| {label} | {_fmt(a['MAPE'], 2)} | {_fmt(a['MASE'], 2)} | {_fmt(a['R2'], 4)} | {_fmt(p['MAPE'], 2)} | {_fmt(p['MASE'], 2)} | {_fmt(p['R2'], 4)} |")
        lines += ["", f"![parity {name}](parity_{name}.png)", ""]
    if reconstructions:
        lines += [
            "## Reconstructions: the decoder",
            "",
            "Test structures against the binarised decode of their encoder means (as the app decodes latent vectors): "
            "volume fraction φ, correlation lengths of the two-point autocorrelation along x, y, z (feature size and "
            "shape), and the solver's constants of the decoded structure against the original's. KL to the prior: "
            "the mean KL(q(z|x) || p(z|c)) in nats with c the true properties, what the latent vector tells the decoder "
            "about the structure beyond its stiffness; near zero, the posterior has collapsed onto the prior.",
            "",
            "| model | structures | φ error (absolute) | correlation-length error % | stiffness error % (solved) "
            "| KL to the prior (nats) | median posterior std |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, q in reconstructions.items():
            lines.append(
                f"| {label} | {q.count} | {q.volume_fraction_error:.3f} | {q.correlation_length_error:.1f} "
                f"| {q.stiffness_error:.1f} ({q.physics_count}) | {q.kl_to_prior:.2f} | {q.posterior_std:.2f} |"
            )
        lines += [""] + [f"![reconstructions {label}]({_figure_name(label)})" for label in reconstructions] + [""]
    lines += ["## The paper's figures (their dataset, FEM; 10 random splits)", "", "Table 1 (C11, single-property models):", "", "| method | MAPE | R² |", "|---|---|---|"]
    lines += [f"| {k} | {m} | {r} |" for k, (m, r) in PAPER_TABLE_1.items()]
    lines += ["", "Tables 7-8 (six-property models), MAPE %:", "", "| method | " + " | ".join(ALL_PROPERTIES) + " |", "|---" * 7 + "|"]
    lines += [f"| {k} | " + " | ".join(v) + " |" for k, v in PAPER_TABLES_7_8.items()]
    return "\n".join(lines) + "\n"


def _parity_plot(path: Path, name: str, results: dict[str, list]) -> None:
    from matplotlib.figure import Figure

    rows = [(label, reps[0]) for label, reps in results.items() if name in reps[0][2]]
    cols = min(4, len(rows))
    nrows = -(-len(rows) // cols)
    fig = Figure(figsize=(3.2 * cols, 3.2 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols)).ravel()
    for ax, (label, (true, pred, names, _)) in zip(axes, rows):
        j = names.index(name)
        lo, hi = float(min(true[:, j].min(), pred[:, j].min())), float(max(true[:, j].max(), pred[:, j].max()))
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.scatter(true[:, j], pred[:, j], s=3, alpha=0.4)
        ax.set_title(label, fontsize=8)
        ax.set(xlabel=f"true {name} (GPa)", ylabel="predicted (GPa)")
    for ax in axes[len(rows):]:
        ax.set_visible(False)
    with atomic_paths(path) as (temp,):
        fig.savefig(temp, dpi=90)
