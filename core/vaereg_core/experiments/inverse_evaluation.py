"""Inverse design measured against the physics, as in the paper's §3 and appendix C.

Three experiments, each checked with the FFT solver (the paper checks with FEM):

(a) :func:`prior_candidates_experiment`: C11 targets across the two-morphology
    range; every component mean of the Gaussian-mixture prior and the mean of
    the Gaussian prior decoded, validated; volume fractions (paper Table 6, Fig. 3b).
(b) the same function with full property vectors taken from the test split
    (paper Tables 9-10), for six-property models.
(c) :func:`annealing_experiment`: simulated annealing from random latent
    vectors vs. from the mixture candidates; predicted and physics error of
    the best state so far against iterations and wall time (paper Fig. 4c).

:func:`write_report` turns the results into Markdown and PNG plots.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from vaereg_core.atomic_files import atomic_paths
from vaereg_core.dataset.execution import Runner, run_here, runner
from vaereg_core.inverse.annealing import AnnealSettings
from vaereg_core.inverse.design import candidates, refine, validate
from vaereg_core.inverse.targets import parse_target

#: The paper's two-morphology C11 targets (GPa, Table 6) and what it reports.
PAPER_C11_TARGETS = (20.0, 25.0, 30.0, 35.0, 40.0, 50.0, 60.0, 80.0)
PAPER_FIGURES = {
    "a": "mean absolute error of the GM component means about 16 % (Fig. 3b, R² 0.97); "
    "the Gaussian prior is worse, most in the middle of the range (e.g. 35 GPa) where both morphologies occur",
    "b": "MAPE per property, Gaussian 27-38 %, Gaussian mixture 9-13 % (Table 10)",
    "c": "from 5 random starts x 200 iterations: 1.5 h on a V100 to reach ≤ 10 % mean error; "
    "from the prior's points: ≤ 10 % within 10 iterations, 2 min on the same GPU",
}


@dataclass
class CandidateCheck:
    """One decoded candidate, validated."""

    model: str
    target: dict[str, float]
    label: str
    weight: float
    volume_fraction: float
    predicted: dict[str, float]
    achieved: dict[str, float]
    error_percent: float
    solver_seconds: float

    def to_dict(self) -> dict:
        """JSON form."""
        return dict(self.__dict__)


def c11_targets(c11: np.ndarray, count: int = 6) -> list[float]:
    """``count`` round C11 targets spread over the 5th-95th percentile of ``c11`` (GPa)."""
    low, high = np.percentile(np.asarray(c11, dtype=np.float64), [5, 95])
    return [float(np.round(v)) for v in np.geomspace(max(low, 1.0), high, count)]


def test_split_targets(properties: np.ndarray, names: tuple[str, ...], count: int = 10, seed: int = 0) -> list[dict[str, float]]:
    """``count`` property vectors drawn from the test split's rows (paper Table 9)."""
    rows = np.random.default_rng(seed).choice(len(properties), size=min(count, len(properties)), replace=False)
    return [{n: float(round(v, 2)) for n, v in zip(names, properties[r])} for r in sorted(rows)]


def _validate_one(item: tuple, options: dict):
    """One physics check, as a task: ``item`` is (index, target, voxels)."""
    _, target, voxels = item
    return validate(voxels, target, **options)


def _validate_all(run: Runner, checks: list[tuple], solver_options: dict | None) -> list:
    """Validations of (target, voxels) pairs, in their order, solved by ``run`` (here or on a cluster)."""
    results: dict[int, object] = {}

    def failed(item: tuple, exc: Exception) -> None:
        raise exc

    run(_validate_one, [(i, target, voxels) for i, (target, voxels) in enumerate(checks)], dict(solver_options or {}),
        on_result=lambda item, value: results.__setitem__(item[0], value), on_error=failed)
    return [results[i] for i in range(len(checks))]


def prior_candidates_experiment(
    models: dict[str, object],
    targets: list[dict[str, float]],
    *,
    reference: np.ndarray | None = None,
    solver_options: dict | None = None,
    progress: Callable[[str], None] | None = None,
    run: Runner = run_here,
) -> list[CandidateCheck]:
    """Decode every prior component mean for each target and validate it with the solver.

    Parameters
    ----------
    models : dict of name -> LoadedModel
        E.g. ``{"Gaussian mixture": gm, "Gaussian": gauss}``; all predict the
        properties named in the targets.
    targets : list of dict
        Target values (GPa); properties a target leaves out are free.
    reference : (N, P) array, optional
        Training property table, to fill free properties (see
        :func:`~vaereg_core.inverse.design.complete_target`).
    solver_options : dict, optional
        Passed to :func:`vaereg_core.physics.homogenize`.
    progress : callable(str), optional
        Called with a line per validated candidate.
    run : Runner
        Runs the solves (:func:`~vaereg_core.dataset.execution.runner`: here, or on a Dask cluster).
    """
    found_all = []
    for spec in targets:
        for name, model in models.items():
            target = parse_target(spec, model.property_names, model.ranges)
            found_all += [(name, target, found) for found in candidates(model, target, reference=reference)]
    validations = _validate_all(run, [(target, found.voxels) for _, target, found in found_all], solver_options)
    checks = []
    for (name, target, found), v in zip(found_all, validations):
        check = CandidateCheck(
            model=name,
            target=target.as_dict(),
            label=found.label,
            weight=found.weight,
            volume_fraction=found.volume_fraction,
            predicted=dict(zip(target.names, map(float, found.predicted))),
            achieved=v.constants,
            error_percent=100.0 * v.mean_relative_error,
            solver_seconds=v.seconds,
        )
        checks.append(check)
        if progress is not None:
            progress(f"{name} {target} {found.label}: vf {check.volume_fraction:.3f}, error {check.error_percent:.1f} %")
    return checks


@dataclass
class AnnealingRun:
    """One annealing run: the best-so-far curves and physics checks of the best state at checkpoints."""

    target: dict[str, float]
    start: str
    seed: int
    best_per_iteration: list[float]
    seconds_per_iteration: list[float]
    checkpoints: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON form."""
        return dict(self.__dict__)


def annealing_experiment(
    model,
    targets: list[dict[str, float]],
    *,
    iterations: int = 200,
    random_starts: int = 5,
    checkpoints: tuple[int, ...] = (0, 10, 50, 200),
    forward=None,
    reference: np.ndarray | None = None,
    solver_options: dict | None = None,
    progress: Callable[[str], None] | None = None,
    run: Runner = run_here,
) -> list[AnnealingRun]:
    """Anneal from random latent vectors and from the mixture candidates, for each target.

    Random starts are drawn from N(0, I), the VAE's aggregate scale; candidate
    starts are the prior's component means. The best state reached by each
    iteration in ``checkpoints`` (0 = the start) is decoded and validated with
    the solver, so the curves show physics error, not only the forward model's.
    """
    runs, pending = [], []  # pending: (run, checkpoint, state, target) to validate once every run is annealed
    checkpoints = tuple(sorted({c for c in checkpoints if c <= iterations} | {iterations}))
    for spec in targets:
        target = parse_target(spec, model.property_names, model.ranges)
        starts = [(f"random {i + 1}", np.random.default_rng(1000 + i).standard_normal(model.latent_dim), i) for i in range(random_starts)]
        starts += [(f"prior {c.label}", c.z, 0) for c in candidates(model, target, reference=reference)]
        for label, z0, seed in starts:
            refinement = refine(model, target, z0, AnnealSettings(iterations=iterations, seed=seed), forward=forward, validate_best=False)
            a = refinement.anneal
            annealed = AnnealingRun(
                target=target.as_dict(),
                start=label,
                seed=seed,
                best_per_iteration=[float(v) for v in a.best_per_iteration],
                seconds_per_iteration=[float(s) for s in a.seconds_per_iteration],
            )
            for c in checkpoints:
                state = min((s for s in a.trajectory if s.iteration <= c), key=lambda s: s.value)
                pending.append((annealed, c, state, target, float(a.seconds_per_iteration[c - 1]) if c > 0 else 0.0))
            runs.append(annealed)
    validations = _validate_all(run, [(target, model.decode(state.z, binary=True)) for _, _, state, target, _ in pending], solver_options)
    for (annealed, c, state, _, seconds), v in zip(pending, validations):
        annealed.checkpoints.append(
            {
                "iteration": c,
                "seconds": seconds,
                "predicted_error_percent": 100.0 * state.value,
                "physics_error_percent": 100.0 * v.mean_relative_error,
            }
        )
    if progress is not None:
        for annealed in runs:
            last = annealed.checkpoints[-1]
            progress(f"{annealed.target} from {annealed.start}: predicted {last['predicted_error_percent']:.1f} %, physics "
                     f"{last['physics_error_percent']:.1f} % after {iterations} iterations ({last['seconds']:.0f} s)")
    return runs


def write_results(path: str | os.PathLike, results: dict) -> Path:
    """Write the experiments' results as JSON (atomically)."""
    path = Path(path)
    with atomic_paths(path) as (temp,):
        temp.write_text(json.dumps(results, indent=1))
    return path


def summarise_candidates(checks: list[dict]) -> dict[str, dict[str, float]]:
    """Per model: mean error of the best component per target, and of all components."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(c["model"] for c in checks):
        mine = [c for c in checks if c["model"] == name]
        by_target: dict[str, list[float]] = {}
        for c in mine:
            by_target.setdefault(json.dumps(c["target"], sort_keys=True), []).append(c["error_percent"])
        out[name] = {
            "all components": float(np.mean([c["error_percent"] for c in mine])),
            "best component": float(np.mean([min(v) for v in by_target.values()])),
            "top-weight component": float(np.mean([c["error_percent"] for c in mine if c["label"] == "k1"])),
        }
    return out


def time_to_reach(run: dict, percent: float) -> tuple[int, float] | None:
    """(iteration, seconds) when the run's checked physics error first reached ``percent`` (None: never)."""
    for c in run["checkpoints"]:
        if c["physics_error_percent"] <= percent:
            return c["iteration"], c["seconds"]
    return None


def write_report(results: dict, folder: str | os.PathLike) -> Path:
    """Markdown report and plots of :func:`prior_candidates_experiment` / :func:`annealing_experiment` results.

    ``results`` holds ``"setup"`` (free-form facts: models, data, hardware,
    time) and any of ``"a"``, ``"b"`` (lists of candidate checks) and ``"c"``
    (list of annealing runs), as written by ``vaereg evaluate-inverse``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# Inverse design, validated with the FFT solver", ""]
    lines += [f"- {k}: {v}" for k, v in results.get("setup", {}).items()]
    for key, title in (("a", "(a) Two-morphology subset: C11 targets"), ("b", "(b) Six-property targets from the test split")):
        checks = results.get(key)
        if not checks:
            continue
        lines += ["", f"## {title}", "", f"Paper: {PAPER_FIGURES[key]}.", ""]
        names = list(dict.fromkeys(c["model"] for c in checks))
        lines += ["| target (GPa) | model | candidate | weight | volume fraction | predicted (GPa) | achieved (GPa) | error % |", "|---|---|---|---|---|---|---|---|"]
        for c in checks:
            t = ", ".join(f"{n} {v:g}" for n, v in c["target"].items())
            pred = ", ".join(f"{v:.1f}" for v in c["predicted"].values())
            ach = ", ".join(f"{v:.1f}" for v in c["achieved"].values())
            lines.append(f"| {t} | {c['model']} | {c['label']} | {c['weight']:.2f} | {c['volume_fraction']:.3f} | {pred} | {ach} | {c['error_percent']:.1f} |")
        lines += ["", "| model | mean error %, best component | top-weight component | all components |", "|---|---|---|---|"]
        for name, s in summarise_candidates(checks).items():
            lines.append(f"| {name} | {s['best component']:.1f} | {s['top-weight component']:.1f} | {s['all components']:.1f} |")
        if key == "a":
            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
            for name in names:
                for label in dict.fromkeys(c["label"] for c in checks if c["model"] == name):
                    rows = [c for c in checks if c["model"] == name and c["label"] == label]
                    x = [c["target"]["C11"] for c in rows]
                    axes[0].plot(x, [c["error_percent"] for c in rows], "o-", label=f"{name} {label}")
                    axes[1].plot(x, [c["volume_fraction"] for c in rows], "o-", label=f"{name} {label}")
            axes[0].set(xlabel="target C11 (GPa)", ylabel="absolute error to target (%)", xscale="log", title="physics-validated error")
            axes[1].set(xlabel="target C11 (GPa)", ylabel="hard-phase volume fraction", xscale="log", title="candidates' volume fraction")
            axes[0].legend(fontsize=8)
            fig.tight_layout()
            with atomic_paths(folder / "candidates_c11.png") as (temp,):
                fig.savefig(temp, dpi=110)
            plt.close(fig)
            lines += ["", "![errors and volume fractions](candidates_c11.png)"]
    runs = results.get("c")
    if runs:
        lines += ["", "## (c) Simulated annealing: random starts vs the mixture candidates", "", f"Paper: {PAPER_FIGURES['c']}.", ""]
        lines += ["| target (GPa) | start | physics error % at start | after | physics error % | predicted error % | seconds | reached 10 % at (iteration, s) |", "|---|---|---|---|---|---|---|---|"]
        for r in runs:
            first, last = r["checkpoints"][0], r["checkpoints"][-1]
            reach = time_to_reach(r, 10.0)
            t = ", ".join(f"{n} {v:g}" for n, v in r["target"].items())
            lines.append(
                f"| {t} | {r['start']} | {first['physics_error_percent']:.1f} | {last['iteration']} | {last['physics_error_percent']:.1f} | "
                f"{last['predicted_error_percent']:.1f} | {last['seconds']:.0f} | {'never' if reach is None else f'{reach[0]}, {reach[1]:.0f}'} |"
            )
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for r in runs:
            style = "-" if r["start"].startswith("prior") else ":"
            colour = "C3" if r["start"].startswith("prior") else "C0"
            best = 100 * np.asarray(r["best_per_iteration"])
            axes[0].plot(np.arange(1, len(best) + 1), best, style, color=colour, lw=1)
            axes[1].plot([c["seconds"] for c in r["checkpoints"]], [c["physics_error_percent"] for c in r["checkpoints"]], "o" + style, color=colour, lw=1, ms=3)
        axes[0].set(xlabel="iteration", ylabel="best predicted error (%)", yscale="log", title="forward-model objective (red: from the prior)")
        axes[1].set(xlabel="wall time (s)", ylabel="physics error of best state (%)", yscale="log", title="physics-validated (red: from the prior)")
        for ax in axes:
            ax.axhline(10, color="grey", lw=0.5)
        fig.tight_layout()
        with atomic_paths(folder / "annealing.png") as (temp,):
            fig.savefig(temp, dpi=110)
        plt.close(fig)
        lines += ["", "![annealing](annealing.png)"]
    report = folder / "report.md"
    with atomic_paths(report) as (temp,):
        temp.write_text("\n".join(lines) + "\n")
    return report


def run_experiments(
    models: dict[str, object],
    experiments: str,
    *,
    c11: list[float] | None = None,
    test_properties: np.ndarray | None = None,
    anneal_targets: list[dict[str, float]] | None = None,
    reference: np.ndarray | None = None,
    iterations: int = 200,
    random_starts: int = 5,
    forward=None,
    solver_options: dict | None = None,
    progress: Callable[[str], None] | None = None,
    run: Runner = run_here,
) -> dict:
    """Run the experiments named in ``experiments`` (letters of "abc"); ``run`` solves the physics checks.

    (a) validates the prior candidates of every model for the ``c11`` targets,
    (b) for ten rows of ``test_properties`` (the test split, (N, P) GPa), and
    (c) anneals the first model (the Gaussian mixture) towards ``anneal_targets``,
    scoring states with ``forward`` (a Reg-only model) when given, else the model's regressor.
    ``reference`` (the training property table) fills properties a target leaves free.
    """
    results: dict = {}
    first = next(iter(models.values()))
    started = time.perf_counter()
    if "a" in experiments:
        if not c11:
            raise ValueError("experiment (a) needs C11 targets")
        results["a"] = [c.to_dict() for c in prior_candidates_experiment(models, [{"C11": v} for v in c11], reference=reference, solver_options=solver_options, progress=progress, run=run)]
    if "b" in experiments:
        if test_properties is None or len(first.property_names) < 2:
            raise ValueError("experiment (b) needs six-property models and the test split's properties")
        targets = test_split_targets(test_properties, tuple(first.property_names))
        results["b"] = [c.to_dict() for c in prior_candidates_experiment(models, targets, reference=reference, solver_options=solver_options, progress=progress, run=run)]
    if "c" in experiments:
        if not anneal_targets:
            raise ValueError("experiment (c) needs annealing targets")
        checkpoints = tuple(c for c in (0, 10, 25, 50, 100, 200, 400) if c <= iterations)
        runs = annealing_experiment(
            first, anneal_targets, iterations=iterations, random_starts=random_starts,
            checkpoints=checkpoints, forward=forward, reference=reference, solver_options=solver_options, progress=progress, run=run,
        )
        results["c"] = [r.to_dict() for r in runs]
    results["seconds"] = time.perf_counter() - started
    return results


__all__ = [
    "AnnealingRun",
    "CandidateCheck",
    "annealing_experiment",
    "c11_targets",
    "prior_candidates_experiment",
    "run_experiments",
    "test_split_targets",
    "write_report",
    "write_results",
]


def describe_solver(options: dict) -> str:
    """One line naming the solver settings the candidates were validated with."""
    from vaereg_core.physics.phases import Material, describe

    numerics = {k: v for k, v in options.items() if k not in ("hard", "soft")}
    if not numerics:
        return "FFT, the solver's default settings (the dataset records none), at the model's grid"
    settings = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in numerics.items())
    material = f"; {describe(Material(options['hard'], options['soft']))}" if "hard" in options and "soft" in options else ""
    return f"FFT, {settings} (the dataset's settings), at the model's grid{material}"


def evaluate_inverse(
    model_path: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    compare: tuple = (),
    experiments: str = "ac",
    c11: list[float] | None = None,
    anneal_targets: int = 3,
    iterations: int = 200,
    random_starts: int = 5,
    forward_path: str | os.PathLike | None = None,
    device: str = "auto",
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[str], None] = print,
) -> Path:
    """``vaereg evaluate-inverse``: the experiments for a model (and ``compare`` models); returns the report's path.

    Targets come from the dataset's test split (the two-morphology part for a
    model trained on it); candidates are validated with the dataset's solver
    settings. Writes ``results.json`` and ``report.md`` with plots into ``out``.

    Raises
    ------
    TargetError
        A forward model that predicts other constants than the model.
    """
    import platform

    import torch

    from vaereg_core.dataset.subsets import in_two_morphology
    from vaereg_core.dataset.table import PROPERTY_NAMES, read_table
    from vaereg_core.inverse.targets import TargetError
    from vaereg_core.model.inference import load_model

    paths = [model_path, *compare]
    models = {}
    for path in paths:
        model = load_model(path, device)
        prior = model.file.config.model.prior
        name = "Gaussian mixture" if prior == "mixture" else "Gaussian" if prior == "gaussian" else prior
        models[name if name not in models else f"{name} ({Path(path).stem})"] = model
    first = next(iter(models.values()))
    forward = load_model(forward_path, device) if forward_path else None
    if forward is not None and forward.property_names != first.property_names:
        raise TargetError(f"{forward_path}: the forward model predicts {', '.join(forward.property_names)}, the model {', '.join(first.property_names)}")
    table = read_table(data)
    test, train = table.rows("test"), table.rows("train")
    if first.file.config.train.subset == "two-morphology":
        test, train = (rows[in_two_morphology(table.filter_index[rows])] for rows in (test, train))
    columns = [PROPERTY_NAMES.index(n) for n in first.property_names]
    properties = table.properties[test][:, columns].astype(np.float64)
    reference = table.properties[train][:, columns].astype(np.float64)
    if first.property_names == ("C11",):
        c11 = c11 or c11_targets(properties[:, 0])
        middle = len(c11) // 2
        anneal = [{"C11": v} for v in c11[max(0, middle - anneal_targets // 2):][:anneal_targets]]
    else:
        anneal = test_split_targets(properties, first.property_names, count=anneal_targets, seed=1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    solver_options = table.solver_options()
    with runner(workers, scheduler) as run:  # the physics checks: here, on a LocalCluster, or on a running cluster
        results = run_experiments(
            models, experiments, c11=c11, test_properties=properties, anneal_targets=anneal, reference=reference,
            iterations=iterations, random_starts=random_starts, forward=forward, solver_options=solver_options,
            progress=progress, run=run,
        )
    scorer = f"{forward_path} (Reg-only)" if forward_path else "the model's regressor"
    results["setup"] = {
        "models": ", ".join(f"{n}: {p} ({m.file.metadata.get('epoch', '?')} epochs)" for (n, m), p in zip(models.items(), paths)),
        "data": f"{data} ({len(table)} structures; targets from {len(test)} test-split structures)",
        "solver": describe_solver(solver_options),
        "hardware": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} torch threads, device {first.device}",
        "annealing": f"{iterations} iterations, {random_starts} random starts (N(0, I)) vs each prior component mean; "
        f"objective scored by {scorer}",
        "time": f"{results['seconds']:.0f} s in all",
    }
    write_results(out / "results.json", results)
    return write_report(results, out)
