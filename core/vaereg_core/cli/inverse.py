"""``vaereg inverse`` and ``vaereg refine``: inverse design from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vaereg_core.cli.arguments import (
    add_execution_options,
    UsageError,
    existing_file,
    existing_path,
    model_or_default,
    nonnegative_float,
    nonnegative_int,
    output_dir,
    output_file,
    positive_float,
    positive_int,
)
from vaereg_core.cli.settings import add_device, add_settings, settings_from
from vaereg_core.inverse.annealing import AnnealSettings
from vaereg_core.inverse.latent_map import MAP_STRUCTURES
from vaereg_core.inverse.targets import Target, TargetError, parse_target
from vaereg_core.voxel_io import atomic_paths, write_voxels

if TYPE_CHECKING:
    from vaereg_core.inverse.feasibility import Feasibility

VOXEL_FORMATS = ("vti", "npy", "npz", "h5", "tif", "raw")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the inverse-design commands."""
    p = subparsers.add_parser(
        "inverse",
        help="candidate structures for a target stiffness",
        description="Decode the model's conditional-prior components for a target (GPa) into candidate structures, "
        "ranked by component weight. Writes one voxel file per candidate and candidates.json with all figures.",
    )
    _common(p)
    p.add_argument("--samples", type=nonnegative_int, default=0, help="extra samples around each component mean (default 0)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of those samples")
    p.add_argument("--validate", action="store_true", help="compute each candidate's properties with the FFT solver")
    p.add_argument("--force", action="store_true", help="design even a target that no two-phase structure can have")
    p.set_defaults(func=_inverse)

    p = subparsers.add_parser(
        "refine",
        help="simulated annealing in latent space towards a target",
        description="Refine a start point by simulated annealing in the model's latent space; the best state is "
        "validated with the FFT solver.",
    )
    _common(p)
    p.add_argument(
        "--start",
        required=True,
        help="a voxel file (encoded), candidates.json[#LABEL] from `vaereg inverse`, comma-separated latent values, or 'random'",
    )
    ends = AnnealSettings()
    add_settings(p, AnnealSettings, help_overrides={
        "start_temperature": f"start temperature, relative error units, cooling to {ends.end_temperature:g} or held below it",
        "start_step": f"start proposal step, latent units, shrinking to {ends.end_step:g} or held below it",
    })
    p.add_argument("--prior-weight", type=nonnegative_float, default=0.0, help="weight of the -log p(z|c) term (default 0)")
    p.add_argument("--forward", type=existing_path, help="separately trained regression-only model for the objective (default: the model's regressor)")
    p.add_argument("--no-validate", action="store_true", help="skip the physics check of the best state")
    p.set_defaults(func=_refine)

    p = subparsers.add_parser(
        "evaluate-inverse",
        help="inverse design checked by physics: prior candidates and annealing (report in Markdown + PNG)",
        description="(a) C11 targets across the two-morphology range: every prior component decoded and validated "
        "with the FFT solver, for each model; (b) ten six-property targets from the test split; (c) simulated "
        "annealing of the first model from random starts vs from its mixture candidates, physics error against "
        "iterations and wall time. Writes results.json and report.md with plots into --out.",
    )
    p.add_argument("--model", required=True, type=existing_path, help="the Gaussian-mixture model (annealed in c)")
    p.add_argument("--compare", nargs="*", default=[], metavar="MODEL", type=existing_path, help="more models for (a)/(b), e.g. the Gaussian-prior twin")
    p.add_argument("--data", required=True, type=existing_file, help="dataset file the models were trained on (targets come from its test split)")
    p.add_argument("--out", required=True, type=output_dir, help="report folder (results.json, report.md, PNG plots)")
    p.add_argument("--experiments", default="ac", type=_experiments, help="letters of the experiments to run: a, b, c (default ac)")
    p.add_argument("--c11", nargs="+", type=positive_float, metavar="GPa", help="C11 targets of (a) (default: six across the data)")
    p.add_argument("--anneal-targets", type=positive_int, default=3, help="targets annealed in (c) (default 3)")
    p.add_argument("--iterations", type=positive_int, default=200, help="annealing iterations per run (default 200, as the paper)")
    p.add_argument("--random-starts", type=nonnegative_int, default=5, help="random starts per target (default 5, as the paper)")
    p.add_argument("--forward", metavar="MODEL", type=existing_path, help="regression-only model that scores annealing states in (c) (default: the model's regressor)")
    add_execution_options(p, "solve the physics checks")
    add_device(p)
    p.set_defaults(func=_evaluate_inverse)

    p = subparsers.add_parser(
        "evaluate-components",
        help="choose the number of mixture components K: the prior refitted for K = 1..5, validation KL and physics error",
        description="Encode the training and validation splits with a trained VAE-Regression, refit its conditional "
        "prior (the generator alone) for each K from several seeds, and report the mean KL on the validation split "
        "and, unless --no-physics, the solver's error of each K's decoded component means for the targets of "
        "evaluate-inverse (a) (C11 models) or (b) (six-property models). Writes results.json, report.md and "
        "components.png into --out.",
    )
    _prior_fit_arguments(p)
    p.add_argument("--out", required=True, type=output_dir, help="report folder")
    p.add_argument("--components", nargs="+", type=positive_int, default=[1, 2, 3, 4, 5], metavar="K", help="values of K (default 1 2 3 4 5)")
    p.add_argument("--targets", type=positive_int, default=6, help="targets of the physics check (default 6)")
    p.add_argument("--no-physics", action="store_true", help="only the KL criterion")
    p.set_defaults(func=_evaluate_components)

    p = subparsers.add_parser(
        "refit-prior",
        help="a copy of a model with its conditional prior refitted to its encoder (K components)",
        description="Encode the training split, fit the generator alone (--seeds initialisations, the lowest training "
        "KL wins) to minimise the KL term with the true properties as c, and write the model with that prior "
        "(float16 weights). Trunk, encoder, regressor and decoder stay as trained. See evaluate-components for "
        "choosing K.",
    )
    _prior_fit_arguments(p)
    p.add_argument("--components", type=positive_int, required=True, metavar="K", help="components of the new prior")
    p.add_argument("--out", required=True, type=output_file, help="model file to write")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_refit_prior)

    p = subparsers.add_parser(
        "latent-map",
        help="the latent explorer's map of a model's training structures, stored beside the model",
        description="Encode a random subset (seed 0) of the model's training split and store the latent means with "
        "their properties in <model stem>.latents.npz, bound to the weights' checksum: the app reads it instead of "
        "encoding at first launch.",
    )
    p.add_argument("--model", type=existing_path, help="a VAE-Regression model file (default: the bundled default model)")
    p.add_argument("--data", required=True, type=existing_file, help="dataset file the model was trained on (a voxel cache is fastest)")
    p.add_argument("--structures", type=positive_int, default=MAP_STRUCTURES, metavar="N", help=f"training structures on the map (default {MAP_STRUCTURES})")
    p.set_defaults(func=_latent_map)


def _prior_fit_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the commands that refit a model's prior to its encoder."""
    p.add_argument("--model", required=True, type=existing_path, help="a trained VAE-Regression model file")
    p.add_argument("--data", required=True, type=existing_file, help="dataset file the model was trained on")
    p.add_argument("--seeds", type=positive_int, default=3, help="initialisations per K (default 3)")
    p.add_argument("--steps", type=positive_int, default=3000, help="full-batch Adam steps per fit (default 3000)")
    p.add_argument("--max-structures", type=positive_int, metavar="N", help="encode at most N random structures per split (default: all)")
    add_device(p)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=existing_path, help="model file (default: the bundled default model)")
    p.add_argument("--target", nargs="+", required=True, metavar="NAME=GPa", help="e.g. C11=35 C22=30; unset properties are free")
    p.add_argument("--out", required=True, type=output_dir, help="output folder (created; existing files are not overwritten without --overwrite)")
    p.add_argument("--format", choices=VOXEL_FORMATS, default="vti", help="voxel file format (default vti)")
    add_device(p)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true", help="print the JSON summary instead of a table")


def _load(args: argparse.Namespace):
    from vaereg_core.model.inference import load_model

    # The default model is loaded on --device too (default_model() would pick its own).
    model = load_model(model_or_default(args.model), args.device)
    target = parse_target(args.target, model.property_names, model.ranges)
    return model, target, _reference_table(model)


def _reference_table(model) -> np.ndarray | None:
    """The shipped training property table in the model's property order, if this installation has it and it is of the model's material."""
    from vaereg_core.dataset.table import PROPERTY_NAMES, read_table
    from vaereg_core.physics.phases import Material
    from vaereg_core.resources import default_dataset_path

    path = default_dataset_path()
    if not path.is_file():
        return None
    table = read_table(path)
    if Material.from_record(table.solver) != model.material:
        return None
    return table.properties[:, [PROPERTY_NAMES.index(n) for n in model.property_names]]


def _feasibility(target: Target, reference: np.ndarray | None, model) -> Feasibility:
    """The target's feasibility for the phases of the model's material."""
    from vaereg_core.inverse.feasibility import assess

    return assess(target, reference=reference, hard=model.material.hard, soft=model.material.soft)


def _write_json(path: Path, data: dict, overwrite: bool) -> None:
    with atomic_paths(path, overwrite=overwrite) as (temp,):
        temp.write_text(json.dumps(data, indent=2))


def _provenance(args, model, target) -> dict:
    from vaereg_core.model.checkpoint import resolve_model_path
    from vaereg_core.provenance import model_identity

    # By name and checksum, as the app records it: a path says nothing once the file is replaced.
    identity = model_identity(resolve_model_path(model_or_default(args.model)))
    return {"model": identity, "target_GPa": target.as_dict(), "extrapolated": list(target.extrapolated)}


def _inverse(args: argparse.Namespace) -> int:
    from vaereg_core.inverse.design import candidates, validate

    model, target, reference = _load(args)
    feasibility = _feasibility(target, reference, model)
    if feasibility.verdict == "impossible" and not args.force:
        raise TargetError(f"target impossible: {feasibility.reasons[0]}; nearest achievable target {feasibility.nearest_text()} (--force designs it anyway)")
    if not args.json:
        print(feasibility.line())
    found = candidates(model, target, samples_per_component=args.samples, seed=args.seed, reference=reference)
    if args.validate:
        for c in found:
            c.validation = validate(c.voxels, target, **model.material.solver_options())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    provenance = _provenance(args, model, target)
    for c in found:
        write_voxels(out / f"{c.label}.{args.format}", c.voxels, metadata={**provenance, **c.to_dict()}, overwrite=args.overwrite)
    summary = {**provenance, "feasibility": feasibility.to_dict(), "candidates": [c.to_dict() for c in found]}
    _write_json(out / "candidates.json", summary, args.overwrite)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    if target.extrapolated:
        print(f"warning: target {', '.join(target.extrapolated)} outside the training data's range: extrapolation")
    print(f"target {target}; {len(found)} candidates in {out}/")
    names = list(target.as_dict())
    for c in found:
        pred = "  ".join(f"{n} {c.predicted[model.property_names.index(n)]:.1f}±{c.predicted_std[model.property_names.index(n)]:.1f}" for n in names)
        line = f"  {c.label:<6} weight {c.weight:.3f}  vf {c.volume_fraction:.3f}  predicted {pred}"
        if c.validation is not None:
            line += "  physics " + "  ".join(f"{n} {c.validation.constants[n]:.1f}" for n in names)
            line += f"  error {100 * c.validation.mean_relative_error:.1f} %"
        print(line)
    return 0


def _experiments(text: str) -> str:
    """``--experiments``: letters among a, b, c."""
    if not text or set(text) - set("abc"):
        raise argparse.ArgumentTypeError(f"must be letters among a, b, c (e.g. ac), got {text!r}")
    return text


def _latent(values, model, where: str) -> np.ndarray:
    """A start point's latent vector: numbers, finite, of the model's latent size."""
    try:
        z = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise UsageError(f"--start {where}: the latent vector is not a list of numbers") from None
    if z.ndim != 1 or z.size != model.latent_dim:
        raise UsageError(f"--start {where}: {z.size} latent values; the model's latent space has {model.latent_dim}")
    if not np.all(np.isfinite(z)):
        raise UsageError(f"--start {where}: the latent vector holds NaN or infinite values")
    return z


def _candidate_latent(path: Path, label: str, model) -> np.ndarray:
    """The latent vector of candidate ``label`` (default the first) in a candidates.json of `vaereg inverse`."""
    if not path.is_file():
        raise UsageError(f"--start {path}: file does not exist")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"--start {path}: not a readable JSON file ({exc})") from None
    found = data.get("candidates") if isinstance(data, dict) else None
    if not isinstance(found, list) or not all(isinstance(c, dict) for c in found):
        raise UsageError(f"--start {path}: no 'candidates' list; expected the candidates.json of `vaereg inverse`")
    chosen = [c for c in found if not label or c.get("label") == label]
    if not chosen:
        labels = ", ".join(str(c.get("label")) for c in found) or "none"
        raise UsageError(f"--start {path}: no candidate labelled {label!r} (labels: {labels})")
    if "latent" not in chosen[0]:
        raise UsageError(f"--start {path}#{chosen[0].get('label', '?')}: the candidate has no 'latent' vector")
    return _latent(chosen[0]["latent"], model, f"{path}#{chosen[0].get('label', '?')}")


def _start_point(spec: str, model) -> np.ndarray:
    if spec == "random":
        return np.random.default_rng(0).standard_normal(model.latent_dim)
    path, _, label = spec.partition("#")
    if path.endswith(".json"):
        return _candidate_latent(Path(path), label, model)
    if Path(spec).suffix:
        from vaereg_core.voxel_io import check_model_grid, read_voxels

        voxels = read_voxels(spec)
        check_model_grid(voxels, model.grid, spec)
        return model.encode(voxels)[0]
    try:
        values = [float(v) for v in spec.split(",")]
    except ValueError:
        raise TargetError(f"--start {spec!r} is neither a file, candidates.json, 'random' nor comma-separated numbers") from None
    return _latent(values, model, repr(spec))


def _anneal_settings(args: argparse.Namespace) -> AnnealSettings:
    """The schedule of ``refine`` (:meth:`AnnealSettings.from_controls`, as the app builds it); a start held constant is said."""
    settings = settings_from(args, AnnealSettings)
    defaults = AnnealSettings()
    for option, start, default in (("--temperature", settings.start_temperature, defaults.end_temperature),
                                   ("--step", settings.start_step, defaults.end_step)):
        if start < default:
            print(f"vaereg refine: note: {option} {start:g} is below the schedule's end {default:g}: held constant (no cooling)", file=sys.stderr)
    return settings


def _refine(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vaereg_core.inverse.design import refine
    from vaereg_core.model.inference import load_model

    model, target, reference = _load(args)
    forward = load_model(args.forward, args.device) if args.forward else None
    start = _start_point(args.start, model)
    settings = _anneal_settings(args)
    with tqdm(total=settings.iterations, unit="it", disable=args.json) as bar:

        def progress(i, n, current, best):
            bar.update(1)
            bar.set_postfix(best=f"{100 * best.value:.2f}%")

        result = refine(
            model, target, start, settings, forward=forward, prior_weight=args.prior_weight, reference=reference,
            progress=progress, validate_best=not args.no_validate,
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    provenance = {**_provenance(args, model, target), "start": args.start}
    summary = {**provenance, **result.to_dict()}
    write_voxels(out / f"refined.{args.format}", result.voxels, metadata={k: v for k, v in summary.items() if k != "trajectory"}, overwrite=args.overwrite)
    _write_json(out / "refine.json", summary, args.overwrite)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    a = result.anneal
    print(f"best objective {100 * a.best.value:.2f} % at iteration {a.best.iteration} of {a.iterations_done} ({a.accepted} accepted)")
    if result.validation is not None:
        v = result.validation
        print("physics: " + "  ".join(f"{n} {v.constants[n]:.2f} GPa" for n in target.as_dict()) + f"  mean error {100 * v.mean_relative_error:.2f} %")
    print(f"wrote {out}/refined.{args.format} and {out}/refine.json")
    return 0


def _evaluate_components(args: argparse.Namespace) -> int:
    from vaereg_core.experiments.components import evaluate_components

    report = evaluate_components(
        args.model, args.data, args.out, components=tuple(args.components), seeds=args.seeds, steps=args.steps,
        targets=args.targets, physics=not args.no_physics, max_structures=args.max_structures, device=args.device,
    )
    print(report)
    return 0


def _refit_prior(args: argparse.Namespace) -> int:
    from vaereg_core.inverse.component_count import refit_prior

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out}: exists; pass --overwrite to replace it")
    fit, before = refit_prior(args.model, args.data, out, components=args.components, seeds=args.seeds, steps=args.steps,
                              max_structures=args.max_structures, device=args.device)
    print(f"{out}: prior refitted with K = {fit.components}; validation KL {before:.3f} -> {fit.val_kl:.3f} nats "
          f"({fit.used} components used)")
    return 0


def _latent_map(args: argparse.Namespace) -> int:
    from vaereg_core.inverse.latent_map import map_path, training_map
    from vaereg_core.model.inference import load_model

    path = Path(model_or_default(args.model))
    model = load_model(path, "cpu", ensemble=False)  # the encoder alone makes the map
    if not model.is_generative:
        raise ValueError(f"{path}: a regression-only model has no latent space to map")

    def progress(done: int, total: int) -> None:
        print(f"\rencoded {done}/{total}", end="", file=sys.stderr, flush=True)

    found = training_map(model, args.data, max_structures=args.structures, progress=progress)
    out = found.save(map_path(path))
    print(f"\n{out}: {len(found.latents)} structures, {out.stat().st_size / 1e6:.2f} MB, for weights {model.file.checksum[:12]}")
    return 0


def _evaluate_inverse(args: argparse.Namespace) -> int:
    from vaereg_core.experiments.inverse_evaluation import evaluate_inverse

    report = evaluate_inverse(
        args.model, args.data, args.out, compare=tuple(args.compare), experiments=args.experiments, c11=args.c11,
        anneal_targets=args.anneal_targets, iterations=args.iterations, random_starts=args.random_starts,
        forward_path=args.forward, device=args.device, workers=args.workers, scheduler=args.scheduler,
    )
    print(report)
    return 0
