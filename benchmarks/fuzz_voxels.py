"""Fuzz run: N seeded mutants per voxel format, each read in a child process; counts per outcome.

Run: ``.venv/bin/python benchmarks/fuzz_voxels.py [--mutants 1000] [--seed 1] [--workers 1]
[--via info]``. Prints, per format, how many mutants gave a clean read, the
project's error, a contained crash (the project's error after the reader's
own child process died or hung), a traceback, a crash, a hang or a memory
blow-up (peak resident memory over 1 GB). Issue 17 asks for 0 in the last
four columns. ``--via info`` runs ``vaereg info FILE`` instead (slower: one
process per file), where exit 2 with one line on stderr is the project's
error. The mutations are those of ``tests/voxel_fuzz.py``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import voxel_fuzz  # noqa: E402


def run_library(paths: list[Path], workers: int) -> list[voxel_fuzz.Result]:
    """Read through ``read_voxel_file`` in ``workers`` harness children."""
    chunks = [paths[k::workers] for k in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        return [r for results in pool.map(voxel_fuzz.run, chunks) for r in results]


def run_info(path: Path) -> voxel_fuzz.Result:
    """Read through ``vaereg info FILE`` in its own process."""
    env = {**os.environ, "VAEREG_MAX_VOXEL_BYTES": str(voxel_fuzz.BUDGET_BYTES), "VAEREG_READ_TIMEOUT_S": str(voxel_fuzz.READ_TIMEOUT_S)}
    command = [sys.executable, "-m", "vaereg_core.cli", "info", str(path)]
    try:
        r = subprocess.run(command, capture_output=True, text=True, env=env, timeout=voxel_fuzz.HARNESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return voxel_fuzz.Result(str(path), "hang")
    if r.returncode == 0:
        return voxel_fuzz.Result(str(path), "clean")
    if r.returncode < 0:
        return voxel_fuzz.Result(str(path), "crash", message=f"signal {-r.returncode}")
    one_line = r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    if not one_line:
        return voxel_fuzz.Result(str(path), "traceback", message=r.stderr[-500:])
    contained = "reader crashed" in r.stderr or "did not finish" in r.stderr
    return voxel_fuzz.Result(str(path), "contained" if contained else "error", message=r.stderr.strip())


def print_table(results: list[voxel_fuzz.Result], seconds: float) -> None:
    table = voxel_fuzz.summarise(results)
    print(f"{'format':<7}" + "".join(f"{o:>11}" for o in voxel_fuzz.OUTCOMES))
    total: Counter = Counter()
    for ext in voxel_fuzz.FORMATS:
        counts = table.get(ext, Counter())
        total.update(counts)
        print(f"{ext:<7}" + "".join(f"{counts[o]:>11}" for o in voxel_fuzz.OUTCOMES))
    print(f"{'all':<7}" + "".join(f"{total[o]:>11}" for o in voxel_fuzz.OUTCOMES))
    print(f"{len(results)} files in {seconds:.0f} s")
    for r in results:
        if r.outcome not in ("clean", "error"):
            print(f"  {r.outcome}: {Path(r.path).name}: {r.cls} {r.message[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=1000, help="mutants per format (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="mutation seed (default 1)")
    parser.add_argument("--workers", type=int, default=1, help="child processes reading in parallel (default 1)")
    parser.add_argument("--via", choices=("library", "info"), default="library", help="read_voxel_file (default) or `vaereg info`")
    parser.add_argument("--formats", nargs="+", default=list(voxel_fuzz.FORMATS), choices=voxel_fuzz.FORMATS)
    args = parser.parse_args()
    if args.mutants < 1 or args.workers < 1:
        parser.error("--mutants and --workers must be at least 1")
    with tempfile.TemporaryDirectory(prefix="vaereg-fuzz-") as folder:
        folder = Path(folder)
        bases = voxel_fuzz.write_bases(folder / "bases")
        paths = voxel_fuzz.write_mutants(bases, folder, args.mutants, args.seed, formats=args.formats)
        print(f"{len(paths)} mutants (seed {args.seed}) via {args.via}, {args.workers} worker(s)", flush=True)
        start = time.perf_counter()
        if args.via == "library":
            results = run_library(paths, args.workers)
        else:
            with ThreadPoolExecutor(args.workers) as pool:
                results = list(pool.map(run_info, paths))
        print_table(results, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
