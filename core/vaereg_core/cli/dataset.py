"""``vaereg dataset build | materialize | report``."""

from __future__ import annotations

import argparse
import sys

from vaereg_core.cli.arguments import (
    add_execution_options,
    device,
    existing_file,
    grid_size,
    nonnegative_int,
    open_fraction,
    output_dir,
    output_file,
    poisson_ratio,
    positive_float,
    positive_int,
)
from vaereg_core.dataset.build import SolverSettings, build_dataset
from vaereg_core.dataset.subsets import SUBSETS
from vaereg_core.microstructure import Recipe
from vaereg_core.physics.phases import describe


class PhaseOption(argparse.Action):
    """``--hard E NU`` / ``--soft E NU``: E (GPa) > 0 and a Poisson's ratio in (-1, 0.5), checked as they are parsed."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parsed = []
        for name, parse, text in (("E", positive_float, values[0]), ("NU", poisson_ratio, values[1])):
            try:
                parsed.append(parse(text))
            except argparse.ArgumentTypeError as exc:
                message = str(exc)
                raise argparse.ArgumentError(self, f"{name} {message}" if message.startswith("must") else message) from None
        setattr(namespace, self.dest, tuple(parsed))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``vaereg dataset`` and its sub-commands."""
    parser = subparsers.add_parser("dataset", help="build, materialise and report the elastic dataset")
    sub = parser.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser(
        "build",
        help="compute the property table (resumable)",
        description="Generate each structure of the recipe and compute C11 C22 C33 C12 C13 C23 with the FFT solver. "
        "The file is rewritten atomically after every structure: kill the build at any moment and run the same "
        "command again to continue.",
    )
    p.add_argument("--out", required=True, type=output_file, help="dataset file (.h5); resumed when it exists")
    p.add_argument("--subset", choices=SUBSETS, default="all", help="two-morphology (300 structures) or all (9,600); default all")
    add_execution_options(p, "compute structures")
    p.add_argument("--device", type=device, default="cpu", help="solver device: cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--backend", default="auto", choices=("auto", "numpy", "torch"), help="solver backend (default auto)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="solver precision (default float32)")
    p.add_argument("--tol", type=open_fraction, default=SolverSettings.tol, help=f"solver relative residual (default {SolverSettings.tol:g})")
    p.add_argument("--limit", type=nonnegative_int, help="compute at most this many structures in this run")
    phases = p.add_argument_group("phases (recorded in the file; a resumed file must have the same)")
    default = SolverSettings()
    phases.add_argument("--hard", nargs=2, action=PhaseOption, metavar=("E", "NU"), default=default.hard,
                        help=f"hard phase (voxel value 1): Young's modulus in GPa and Poisson's ratio (default {default.hard[0]:g} {default.hard[1]:g})")
    phases.add_argument("--soft", nargs=2, action=PhaseOption, metavar=("E", "NU"), default=default.soft,
                        help=f"soft phase (voxel value 0): Young's modulus in GPa and Poisson's ratio (default {default.soft[0]:g} {default.soft[1]:g})")
    recipe = p.add_argument_group("recipe (defaults: the paper's dataset)")
    recipe.add_argument("--seed", type=nonnegative_int, default=Recipe.seed, help=f"master seed (default {Recipe.seed})")
    recipe.add_argument("--fields", type=positive_int, default=Recipe.n_fields, help=f"random fields (default {Recipe.n_fields})")
    recipe.add_argument("--size", type=grid_size, default=Recipe.size, help=f"grid edge (default {Recipe.size})")
    p.set_defaults(func=_build)

    p = sub.add_parser("materialize", help="regenerate the voxels into an HDF5 cache")
    p.add_argument("--data", required=True, type=existing_file, help="dataset file (property table)")
    p.add_argument("--out", required=True, type=output_file, help="cache file to write (.h5)")
    add_execution_options(p, "generate structures")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_materialize)

    p = sub.add_parser("report", help="plots (PNG) and a table of ranges")
    p.add_argument("file", type=existing_file, help="dataset file")
    p.add_argument("--out", default="docs/dataset", type=output_dir, help="output folder (default docs/dataset)")
    p.set_defaults(func=_report)


def _bar(total: int, initial: int, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit=unit, file=sys.stderr, dynamic_ncols=True, smoothing=0.05)


def _build(args: argparse.Namespace) -> int:
    recipe = Recipe(seed=args.seed, n_fields=args.fields, size=args.size)
    settings = SolverSettings(tol=args.tol, hard=args.hard, soft=args.soft, backend=args.backend, device=args.device, dtype=args.dtype)
    if settings.material.inverted:
        print(f"note: the hard phase (voxel value 1) is the softer one here: {describe(settings.material)}", file=sys.stderr)
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = _bar(total, done - 1, "structure")
        bar.update(done - bar.n)

    summary = build_dataset(args.out, recipe=recipe, subset=args.subset, settings=settings, workers=args.workers,
                            scheduler=args.scheduler, limit=args.limit, progress=progress)
    if bar is not None:
        bar.close()
    print(summary)
    return 130 if summary.interrupted else (1 if summary.failures else 0)


def _materialize(args: argparse.Namespace) -> int:
    from vaereg_core.dataset.materialize import materialize

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = _bar(total, 0, "structure")
        bar.update(1)

    out = materialize(args.data, args.out, overwrite=args.overwrite, workers=args.workers, scheduler=args.scheduler, progress=progress)
    if bar is not None:
        bar.close()
    print(f"wrote {out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from vaereg_core.dataset.report import write_report

    out = write_report(args.file, args.out)
    print(f"wrote the report to {out}/README.md")
    return 0
