"""``vaereg design``: physics-verified inverse design (the solver decides, the network proposes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vaereg_core.cli.arguments import output_dir, output_file
from vaereg_core.cli.settings import add_device, add_settings, settings_from
from vaereg_core.inverse.verified import DesignSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the design command."""
    p = subparsers.add_parser(
        "design",
        help="structures whose solver-computed stiffness meets a target (verified design)",
        description="Proposals from the model's prior and moves in its latent space, ranked by its regressor "
        "corrected by the solver, and every one scored by the FFT solver; the best designs of different "
        "morphology are solved again at tol 1e-4. Writes DIR/design-N.vti and DIR/design.json (designs best "
        "first with verified constants and errors, the trajectory, the feasibility verdict). Exit 0 when it "
        "ran (design.json says whether the target was met), 2 on bad input.",
    )
    p.add_argument("--target", nargs="+", required=True, metavar="NAME=GPa", help="e.g. C11=35 C22=30; unset constants are free")
    p.add_argument("--model", help="model file (default: the bundled default model)")
    p.add_argument("--out", required=True, type=output_dir, help="output folder (existing design files are replaced only with --overwrite)")
    add_settings(p, DesignSettings)
    p.add_argument("--report", type=output_file, metavar="FILE.html",
                   help="also write a self-contained HTML report (target, feasibility, each design's picture and constants, provenance)")
    p.add_argument("--force", action="store_true", help="design even a target the feasibility check calls impossible")
    p.add_argument("--overwrite", action="store_true")
    add_device(p, "network and solver")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_design)


def _design(args: argparse.Namespace) -> int:
    from vaereg_core.cli.inverse import _feasibility, _load, _provenance, _write_json
    from vaereg_core.inverse.verified import design
    from vaereg_core.voxel_io import write_voxels

    out = Path(args.out)
    report = [Path(args.report)] if args.report else []
    earlier = [p for p in (out / "design.json", *sorted(out.glob("design-*.vti")), *report) if p.exists()]
    if earlier and not args.overwrite:  # refused before a minute of work, not after
        raise ValueError(f"{earlier[0]}: file exists; pass --overwrite to replace the designs in {out}")
    model, target, reference = _load(args)
    feasibility = _feasibility(target, reference, model)
    if feasibility.verdict == "impossible" and not args.force:
        raise ValueError(f"target {target} is impossible for these phases ({feasibility.reasons[0]}); "
                         f"nearest achievable target {feasibility.nearest_text()} (or pass --force)")
    print(feasibility.line())
    settings = settings_from(args, DesignSettings)
    solver = {"device": args.device if args.device != "mps" else "cpu"}

    def progress(entry: dict) -> None:
        if not args.quiet:
            print(f"  {entry['seconds']:6.1f} s  {entry['solver_calls']:3d} solves  best verified error {100 * entry['best_error']:.2f} %",
                  file=sys.stderr, flush=True)

    result = design(model, target, settings, reference=reference, progress=progress, solver_options=solver)
    out.mkdir(parents=True, exist_ok=True)
    provenance = {**_provenance(args, model, target), "method": "verified design (vaereg design)"}
    record = {**provenance, **result.to_dict(), "feasibility": feasibility.to_dict()}
    for rank, (d, entry) in enumerate(zip(result.designs, record["designs"]), start=1):
        path = out / f"design-{rank}.vti"
        write_voxels(path, d.state.voxels, metadata={**provenance, **entry}, overwrite=args.overwrite)
        entry["file"] = path.name
    _write_json(out / "design.json", record, args.overwrite)
    if report:
        from vaereg_core import __version__
        from vaereg_core.provenance import model_identity
        from vaereg_core.reports.design_report import verified_design_report, write_report
        from vaereg_core.resources import default_model_path

        identity = model_identity(args.model or default_model_path())
        command = f"vaereg design --target {' '.join(args.target)} --seconds {settings.seconds:g} (vaereg_core {__version__})"
        report[0].parent.mkdir(parents=True, exist_ok=True)
        write_report(report[0], verified_design_report(result, feasibility, model, identity, command), args.overwrite)
    verdict = "met" if result.met else "not met"
    print(f"target {target}: goal {100 * settings.goal:g} % {verdict}; {result.solver_calls} solves in {result.seconds:.1f} s; {out}/design.json")
    for rank, d in enumerate(result.designs, start=1):
        errors = "  ".join(f"{n} {d.constants[n]:.2f} ({100 * e:+.1f} %)" for n, e in d.errors.items())
        print(f"  design-{rank}.vti  verified error {100 * d.mean_error:.2f} %  vf {d.state.voxels.mean():.3f}  {errors}")
    if report:
        print(f"report: {report[0]}")
    return 0

