"""``vaereg homogenize``: effective stiffness of a voxel file."""

from __future__ import annotations

import argparse
import json

from vaereg_core.cli.arguments import check_index, finite_float, positive_float
from vaereg_core.cli.settings import add_settings, settings_from
from vaereg_core.settings import SolverSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the physics command."""
    p = subparsers.add_parser(
        "homogenize",
        help="effective elastic stiffness (GPa) of a voxel file",
        description="Effective elastic stiffness of a periodic two-phase structure (1 = hard phase, 0 = soft phase; "
        "default E=120 and 2.4 GPa, nu=0.3) by FFT-accelerated conjugate gradients. Prints C11 C22 C33 C12 "
        "C13 C23 (or the 6x6 with --all) with iterations, residuals and the discretisation.",
    )
    p.add_argument("file", help="voxel file (.npy .npz .h5 .vti .tif .raw+json)")
    p.add_argument("--index", type=int, help="structure of an HDF5 stack")
    p.add_argument("--threshold", type=finite_float, help="for grey-scale data: values above become hard phase")
    p.add_argument("--all", action="store_true", help="all six load cases: the full 6x6 stiffness")
    add_settings(p, SolverSettings)
    p.add_argument("--max-memory", type=positive_float, metavar="GB", help="memory limit of the solve (default: the memory available)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_homogenize)


def _homogenize(args: argparse.Namespace) -> int:
    from vaereg_core.physics import homogenize
    from vaereg_core.physics.bounds import hashin_shtrikman_c11
    from vaereg_core.voxel_io import read_voxels

    check_index(args.file, args.index)
    options = settings_from(args, SolverSettings).homogenize_options()
    hard, soft = options["hard"], options["soft"]
    voxels = read_voxels(args.file, index=args.index, threshold=args.threshold)
    result = homogenize(voxels, constants="all" if args.all else "normal", max_memory=args.max_memory, **options)
    lo, hi = hashin_shtrikman_c11(hard, soft, result.volume_fraction)
    if args.json:
        out = result.to_dict()
        out["file"] = args.file
        out["hashin_shtrikman_c11"] = [lo, hi]
        print(json.dumps(out, indent=2))
        return 0
    shape = "x".join(map(str, result.shape))
    print(f"{args.file}: {shape} voxels, hard-phase volume fraction {result.volume_fraction:.4f}")
    print("  " + "  ".join(f"{name} {result.constants[name]:8.3f}" for name in ("C11", "C22", "C33")) + "  GPa")
    print("  " + "  ".join(f"{name} {result.constants[name]:8.3f}" for name in ("C12", "C13", "C23")) + "  GPa")
    if args.all:
        print("  full stiffness (GPa, Voigt order 11 22 33 23 13 12):")
        for row in result.stiffness:
            print("    " + " ".join(f"{v:9.3f}" for v in row))
    its = " ".join(f"{k} {v}" for k, v in result.iterations.items())
    res = max(result.residuals.values())
    print(f"  iterations: {its}; max relative residual {res:.1e} (tol {result.tol:.0e})")
    print(
        f"  {result.discretization} discretisation, {result.backend} {result.dtype} on {result.device}, "
        f"{result.seconds:.2f} s"
    )
    inside = all(lo <= result.constants[c] <= hi for c in ("C11", "C22", "C33"))
    print(f"  Hashin-Shtrikman range of C11 for an isotropic composite: [{lo:.2f}, {hi:.2f}] GPa" + ("" if inside else " (outside: anisotropic structure)"))
    return 0
