"""How many mixture components K the prior needs: refitted for each K, judged by validation KL and by the solver.

:func:`evaluate_components` is ``vaereg evaluate-components``; it writes
``results.json``, ``report.md`` and ``components.png``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from vaereg_core.atomic_files import atomic_paths
from vaereg_core.experiments.inverse_evaluation import (
    c11_targets,
    describe_solver,
    prior_candidates_experiment,
    summarise_candidates,
    test_split_targets,
    write_results,
)
from vaereg_core.inverse.component_count import (
    best_fits,
    component_study,
    encoded_splits,
    with_generator,
)


def evaluate_components(
    model_path: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    components: tuple[int, ...] = (1, 2, 3, 4, 5),
    seeds: int = 3,
    steps: int = 3000,
    targets: int = 6,
    physics: bool = True,
    max_structures: int | None = None,
    device: str = "auto",
    progress: Callable[[str], None] = print,
) -> Path:
    """Refit the prior of a trained model for each K and report; returns the report's path.

    Parameters
    ----------
    components : tuple of int
        The values of K, each 1 or more.
    seeds, steps : int
        Initialisations per K and full-batch Adam steps per fit.
    targets : int
        Targets of the physics check (C11 across the data for C11 models, test-split vectors otherwise).
    physics : bool
        Also decode each K's component means and solve them (else only the KL criterion).
    """
    import torch

    from vaereg_core.dataset.table import read_table
    from vaereg_core.model.posteriors import mean_kl
    from vaereg_core.model.splits import load_split

    if min(components) < 1:
        raise ValueError("--components must be 1 or more")
    start = time.perf_counter()
    model, columns, train_properties, train, val = encoded_splits(model_path, data, device, max_structures)
    config = model.file.config
    progress(f"encoded {len(train)} training and {len(val)} validation structures")
    fits = component_study(train, val, config.model.generator_hidden, components=tuple(components), seeds=seeds, steps=steps)
    for f in fits:
        progress(f"K = {f.components} seed {f.seed}: train KL {f.train_kl:.3f}, validation KL {f.val_kl:.3f}, {f.used} used")
    results: dict = {"fits": [f.to_dict() for f in fits]}
    if physics:
        test = load_split(data, "test", config, max_structures).properties[:, columns]
        if model.property_names == ("C11",):
            chosen = [{"C11": v} for v in c11_targets(test[:, 0], count=targets)]
        else:
            chosen = test_split_targets(test, model.property_names, count=targets)
        solver_options = read_table(data).solver_options()
        checks = []
        for k, fit in best_fits(fits).items():
            twin = {f"K = {k}": with_generator(model, fit.generator)}
            checks += [
                c.to_dict()
                for c in prior_candidates_experiment(twin, chosen, reference=train_properties, solver_options=solver_options, progress=progress)
            ]
        results["candidates"] = checks
        results["physics"] = {name.removeprefix("K = "): s for name, s in summarise_candidates(checks).items()}
    results["setup"] = {
        "model": f"{model_path} (trained with K = {config.model.components if config.model.prior == 'mixture' else 1}, {model.file.metadata.get('epoch', '?')} epochs)",
        "data": f"{data}: {len(train)} training, {len(val)} validation structures ({config.train.subset})",
        "posteriors": f"mean KL to the model's own prior on the validation split {mean_kl(model.network.generator, val):.2f} nats "
        f"(what z tells beyond c), median posterior std {float(torch.exp(0.5 * val.log_var).median()):.2f}",
        "fit": f"generator alone (Table 5 network, {config.model.generator_hidden} hidden units), full-batch Adam 5e-3, "
        f"{steps} steps, {seeds} seeds per K; c = true properties; per K the seed of lowest training KL is decoded",
        **({"physics": f"{len(chosen)} targets from the test split; " + describe_solver(solver_options)} if physics else {}),
        "time": f"{time.perf_counter() - start:.0f} s",
    }
    report = write_component_report(results, out)
    write_results(Path(out) / "results.json", results)
    return report


def write_component_report(results: dict, folder: str | os.PathLike) -> Path:
    """``report.md`` and ``components.png`` of a study.

    ``results`` holds ``"setup"`` (free-form facts), ``"fits"`` (the
    :meth:`ComponentFit.to_dict` of every fit) and optionally ``"physics"``
    ({K: :func:`~vaereg_core.experiments.inverse_evaluation.summarise_candidates` entry}).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fits = results["fits"]
    ks = sorted({f["components"] for f in fits})
    physics = {int(k): v for k, v in results.get("physics", {}).items()}
    lines = ["# Number of mixture components K: the prior refitted on a trained encoder", ""]
    lines += [f"- {k}: {v}" for k, v in results.get("setup", {}).items()]
    lines += ["", "| K | train KL (best seed) | validation KL, mean ± std over seeds | components used | "
              "physics error %, best component | top-weight component |", "|---|---|---|---|---|---|"]
    for k in ks:
        mine = [f for f in fits if f["components"] == k]
        best = min(mine, key=lambda f: f["train_kl"])
        val = np.array([f["val_kl"] for f in mine])
        p = physics.get(k)
        errors = f"{p['best component']:.1f} | {p['top-weight component']:.1f}" if p else "— | —"
        lines.append(f"| {k} | {best['train_kl']:.3f} | {val.mean():.3f} ± {val.std():.3f} | {best['used']} | {errors} |")
    fig, axes = plt.subplots(1, 2 if physics else 1, figsize=(10 if physics else 5, 4), squeeze=False)
    for f in fits:
        axes[0, 0].plot(f["components"], f["val_kl"], "o", color="tab:blue", alpha=0.5)
        axes[0, 0].plot(f["components"], f["train_kl"], "x", color="tab:gray", alpha=0.5)
    axes[0, 0].plot([], [], "o", color="tab:blue", label="validation")
    axes[0, 0].plot([], [], "x", color="tab:gray", label="train")
    axes[0, 0].set(xlabel="components K", ylabel="mean KL(q || p(z|c)) (nats)", xticks=ks, title="fit of the prior, every seed")
    axes[0, 0].legend()
    if physics:
        pk = sorted(physics)
        axes[0, 1].plot(pk, [physics[k]["best component"] for k in pk], "o-", label="best component")
        axes[0, 1].plot(pk, [physics[k]["top-weight component"] for k in pk], "s--", label="top-weight component")
        axes[0, 1].set(xlabel="components K", ylabel="mean physics error to target (%)", xticks=pk, title="decoded component means")
        axes[0, 1].legend()
    fig.tight_layout()
    with atomic_paths(folder / "components.png") as (temp,):
        fig.savefig(temp, dpi=110)
    plt.close(fig)
    lines += ["", "![KL and physics error against K](components.png)", ""]
    report = folder / "report.md"
    with atomic_paths(report) as (temp,):
        temp.write_text("\n".join(lines))
    return report
