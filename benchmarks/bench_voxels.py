"""Benchmark: generating one 51^3 structure and reading/writing each voxel format.

Run: ``.venv/bin/python benchmarks/bench_voxels.py [--repeat 20]``. Prints the
median time of each operation and its ratio to reading ``.npy`` (machines are
noisy; compare ratios from one run).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from vaereg_core.microstructure import Recipe
from vaereg_core.voxel_io import WRITE_EXTENSIONS, export_stl, read_voxels, write_voxels


def median_seconds(fn, repeat: int) -> float:
    """Median wall time of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    recipe = Recipe()
    voxels = recipe.structure(0, 21)
    rows = [("generate 51^3 (recipe structure)", median_seconds(lambda: recipe.structure(0, 21), args.repeat), None)]
    with tempfile.TemporaryDirectory() as folder:
        for ext in WRITE_EXTENSIONS:
            if ext in (".hdf5", ".tiff"):
                continue
            path = Path(folder) / f"a{ext}"
            write = median_seconds(lambda: write_voxels(path, voxels, metadata={"bench": 1}, overwrite=True), args.repeat)
            read = median_seconds(lambda: read_voxels(path), args.repeat)
            rows += [(f"write {ext}", write, path.stat().st_size), (f"read {ext}", read, None)]
        stl = Path(folder) / "a.stl"
        rows.append(("export .stl (smooth)", median_seconds(lambda: export_stl(stl, voxels, overwrite=True), max(3, args.repeat // 4)), stl.stat().st_size))
    reference = dict((name, t) for name, t, _ in rows)["read .npy"]
    print(f"{'operation':<36}{'median ms':>10}{'x read .npy':>13}{'file kB':>10}")
    for name, t, size in rows:
        print(f"{name:<36}{1e3 * t:>10.2f}{t / reference:>13.1f}{'' if size is None else f'{size / 1024:.1f}':>10}")


if __name__ == "__main__":
    main()
