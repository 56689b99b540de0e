"""``vaereg generate``, ``vaereg info`` and ``vaereg convert``."""

from __future__ import annotations

import argparse
import json

from vaereg_core.cli.arguments import MIN_GRID, check_index, finite_float, fraction, grid_size, int_range, nonnegative_int, output_file, positive_float
from vaereg_core.descriptors import correlation_length, volume_fraction
from vaereg_core.memory import check_memory
from vaereg_core.microstructure import FILTERS, SIGMA_VALUES, filter_index, filter_sigma, generate
from vaereg_core.provenance import format_table, provenance_rows
from vaereg_core.voxel_io import READ_EXTENSIONS, export_stl, read_voxel_file, write_voxels

GENERATE_BYTES_PER_VOXEL = 48
"""Peak memory of :func:`generate` per voxel (float64 field, its half spectrum, the sort order):
40 B measured at 128^3 (ru_maxrss over the resident size before), rounded up."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the voxel-file commands."""
    p = subparsers.add_parser(
        "generate",
        help="generate one structure from the recipe",
        description="Generate one binary microstructure: a seeded uniform field smoothed by a periodic "
        "anisotropic Gaussian filter, thresholded to the requested hard-phase volume fraction.",
    )
    p.add_argument("-o", "--output", required=True, type=output_file, help=f"output file ({', '.join(READ_EXTENSIONS)} or .stl)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--sigma", type=int, choices=SIGMA_VALUES, nargs=3, metavar=("SX", "SY", "SZ"), help=f"filter sigma per axis, each in {SIGMA_VALUES}")
    group.add_argument("--filter", type=int_range(0, len(FILTERS) - 1), dest="filter_index", help=f"filter index 0..{len(FILTERS) - 1}")
    p.add_argument("--volume-fraction", "--vf", type=fraction, default=0.5, help="hard-phase volume fraction (default 0.5)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="master seed (default 0)")
    p.add_argument("--field", type=nonnegative_int, default=0, dest="field_index", help="random field index (default 0)")
    p.add_argument("--size", type=grid_size, default=51, help=f"grid edge in voxels, at least {MIN_GRID} (default 51)")
    p.add_argument("--max-memory", type=positive_float, metavar="GB", help="memory limit (default: the memory available)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_generate)

    p = subparsers.add_parser("info", help="shape, dtype, volume fraction of a voxel file")
    p.add_argument("file")
    p.add_argument("--index", type=int, help="structure of an HDF5 stack")
    p.add_argument("--threshold", type=finite_float, help="for grey-scale data: values above become hard phase")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_info)

    p = subparsers.add_parser("convert", help="convert a voxel file to another format (or .stl surface)")
    p.add_argument("input")
    p.add_argument("output", type=output_file)
    p.add_argument("--index", type=int, help="structure of an HDF5 stack")
    p.add_argument("--threshold", type=finite_float, help="for grey-scale data: values above become hard phase")
    p.add_argument("--blocky", action="store_true", help="for .stl: voxel faces instead of a smooth surface")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_convert)


def _save(path: str, voxels, metadata: dict, *, overwrite: bool, blocky: bool = False) -> None:
    if path.lower().endswith(".stl"):
        export_stl(path, voxels, smooth=not blocky, overwrite=overwrite)
    else:
        write_voxels(path, voxels, metadata=metadata, overwrite=overwrite)


def _generate(args: argparse.Namespace) -> int:
    if args.sigma is not None:
        index = filter_index(tuple(args.sigma))
    elif args.filter_index is not None:
        index = args.filter_index
    else:
        index = filter_index((2, 2, 2))
    check_memory(GENERATE_BYTES_PER_VOXEL * args.size**3, f"generating a {args.size}^3 structure", max_gb=args.max_memory)
    voxels = generate(seed=args.seed, field_index=args.field_index, filter_index=index, volume_fraction=args.volume_fraction, size=args.size)
    metadata = {
        "generator": "vaereg periodic Gaussian filter",
        "seed": args.seed,
        "field_index": args.field_index,
        "filter_index": index,
        "sigma": list(filter_sigma(index)),
        "requested_volume_fraction": args.volume_fraction,
    }
    _save(args.output, voxels, metadata, overwrite=args.overwrite)
    print(f"wrote {args.output}: {args.size}^3, sigma {filter_sigma(index)}, volume fraction {volume_fraction(voxels):.4f}")
    return 0


def _info(args: argparse.Namespace) -> int:
    check_index(args.file, args.index)
    voxels, metadata = read_voxel_file(args.file, index=args.index, threshold=args.threshold)
    info = {
        "file": args.file,
        "shape": list(voxels.shape),
        "dtype": str(voxels.dtype),
        "cubic": len(set(voxels.shape)) == 1,
        "volume_fraction": volume_fraction(voxels),
        "correlation_length": [correlation_length(voxels, a) for a in range(3)],
        "metadata": metadata,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"file             {info['file']}")
    print(f"shape            {' x '.join(map(str, info['shape']))}{'' if info['cubic'] else '  (not cubic: viewable, but models need a cubic grid)'}")
    print(f"dtype            {info['dtype']} (1 = hard phase)")
    print(f"volume fraction  {info['volume_fraction']:.4f}")
    print("corr. length     " + "  ".join(f"{a}: {c:.2f}" for a, c in zip("xyz", info["correlation_length"])) + "  voxels (S2 falls to 1/e)")
    rows = provenance_rows(metadata)
    if rows:
        print("\nstored with the file")
        print(format_table(rows))
    return 0


def _convert(args: argparse.Namespace) -> int:
    check_index(args.input, args.index)
    voxels, metadata = read_voxel_file(args.input, index=args.index, threshold=args.threshold)
    _save(args.output, voxels, {**metadata, "converted_from": args.input}, overwrite=args.overwrite, blocky=args.blocky)
    print(f"wrote {args.output}")
    return 0
