"""Benchmark: FFT homogenisation at 51^3, contrast 50 (issue 6).

Run: ``.venv/bin/python benchmarks/bench_physics.py [--tol 1e-6] [--size 51] [--batch 4]``

Prints, for each backend and dtype (one fresh process each, so that peak
memory is that configuration's): seconds per load case (median of
``--repeat`` solves of the three normal load cases), CG iterations, peak
resident memory and its increase over the process after imports, beside
the estimate checked before a solve (:mod:`vaereg_core.physics.memory`); then the
plain Moulinec–Suquet fixed point on the same grid and tolerance with the
ratios; then batched throughput (structures/hour for the six constants) at
the dataset's tolerance 1e-4; then full-integration FE. Machines shared with
other work are noisy: compare ratios taken in one run.

PyMKS/SfePy are not run: FACTS-physics.md says not to make them a
dependency (PyMKS pins old versions); its measurement there (SfePy 78 s on
21^3 for one load case vs 0.2 s for the same full-integration operator solved
matrix-free with an FFT preconditioner, identical to 7e-15) stands; our
"fe-full" is checked against an independent sparse FE code in
tests/test_physics_fe_reference.py instead.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def structure(size: int):
    from vaereg_core.microstructure import filter_index, generate

    return generate(seed=0, field_index=0, filter_index=filter_index((2, 2, 2)), volume_fraction=0.5, size=size)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(args: argparse.Namespace) -> dict:
    """Run one configuration in this process; returns its figures."""
    import numpy as np

    from vaereg_core.physics import homogenize, homogenize_batch
    from vaereg_core.physics.memory import solve_bytes

    v = structure(args.size)
    base = peak_rss_mb()
    kwargs = dict(backend=args.backend, device="cpu", dtype=args.dtype, tol=args.tol, method=args.method, discretization=args.discretization)
    homogenize(v, **kwargs)  # warm-up (plans, imports)
    times, result = [], None
    for _ in range(args.repeat):
        t = time.perf_counter()
        result = homogenize(v, **kwargs)
        times.append(time.perf_counter() - t)
    out = {
        "seconds_per_load_case": statistics.median(times) / 3,
        "iterations": result.iterations,
        "C11": result.constants["C11"],
        "C12": result.constants["C12"],
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_imports_mb": base,
        "work_mb": result.work_bytes / 2**20,
        "estimate_mb": solve_bytes(v.shape, structures=1, cases=3, backend=result.backend, discretization=args.discretization, dtype=args.dtype) / 2**20,
    }
    if args.batch:
        stack = np.stack([v] * args.batch)
        t = time.perf_counter()
        homogenize_batch(stack, **kwargs)
        out["batch_seconds_per_structure"] = (time.perf_counter() - t) / args.batch
    return out


def run_child(argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=51)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4, help="structures per batched solve for the throughput figure")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="numpy", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float64", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="cg", help=argparse.SUPPRESS)
    parser.add_argument("--discretization", default="rotated", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args)))
        return

    common = ["--size", str(args.size), "--repeat", str(args.repeat)]
    print(f"FFT homogenisation, {args.size}^3, contrast 50 (E 120 / 2.4 GPa, nu 0.3), sigma (2,2,2) structure, vf 0.5")
    print(f"rotated scheme, conjugate gradients, tol {args.tol:g}; seconds per load case = median solve of 3 normal loads / 3\n")
    header = f"{'backend':8s} {'dtype':8s} {'s/load case':>11s} {'iters':>6s} {'peak RSS MB':>12s} {'(imports)':>10s} {'estimate MB':>12s} {'work MB':>8s}  C11"
    print(header)
    cg = {}
    for backend in ("numpy", "torch"):
        for dtype in ("float64", "float32"):
            r = run_child(common + ["--tol", str(args.tol), "--backend", backend, "--dtype", dtype, "--batch", "0"])
            cg[(backend, dtype)] = r
            if "error" in r:
                print(f"{backend:8s} {dtype:8s} failed: {r['error']}")
                continue
            its = max(r["iterations"].values())
            print(
                f"{backend:8s} {dtype:8s} {r['seconds_per_load_case']:11.3f} {its:6d} {r['peak_rss_mb']:12.0f} "
                f"{r['rss_after_imports_mb']:10.0f} {r['estimate_mb']:12.0f} {r['work_mb']:8.1f}  {r['C11']:.6f}"
            )

    print(f"\nplain Moulinec-Suquet fixed point (same operators, reference = mean of the phases), tol {args.tol:g}")
    for dtype in ("float64", "float32"):
        r = run_child(common + ["--repeat", "1", "--tol", str(args.tol), "--backend", "numpy", "--dtype", dtype, "--method", "basic", "--batch", "0"])
        ref = cg[("numpy", dtype)]
        if "error" in r or "error" in ref:
            print(f"numpy {dtype}: failed: {r.get('error') or ref.get('error')}")
            continue
        its, its_cg = max(r["iterations"].values()), max(ref["iterations"].values())
        print(
            f"numpy {dtype}: basic {r['seconds_per_load_case']:.3f} s/load case, {its} iterations; CG {ref['seconds_per_load_case']:.3f} s, "
            f"{its_cg} iterations; ratio basic/CG time {r['seconds_per_load_case'] / ref['seconds_per_load_case']:.1f}x, "
            f"iterations {its / its_cg:.1f}x; C11 agreement {abs(r['C11'] - ref['C11']) / ref['C11']:.1e}"
        )

    print(f"\nbatched throughput, tol 1e-4 (the dataset's), {args.batch} structures per batch, six constants (3 normal loads)")
    for backend, dtype in (("numpy", "float32"), ("numpy", "float64"), ("torch", "float32")):
        r = run_child(common + ["--repeat", "1", "--tol", "1e-4", "--backend", backend, "--dtype", dtype, "--batch", str(args.batch)])
        if "error" in r:
            print(f"{backend} {dtype}: failed: {r['error']}")
            continue
        single = 3 * r["seconds_per_load_case"]
        batched = r["batch_seconds_per_structure"]
        print(
            f"{backend:6s} {dtype}: one at a time {single:.2f} s/structure ({3600 / single:,.0f}/hour); "
            f"batched {batched:.2f} s/structure ({3600 / batched:,.0f}/hour); iterations {max(r['iterations'].values())}"
        )

    print(f"\nfull-integration FE ('fe-full', matrix-free, FFT-preconditioned CG), tol {args.tol:g}")
    for dtype in ("float64", "float32"):
        r = run_child(common + ["--repeat", "1", "--tol", str(args.tol), "--backend", "numpy", "--dtype", dtype, "--discretization", "fe-full", "--batch", "0"])
        if "error" in r:
            print(f"numpy {dtype}: failed: {r['error']}")
            continue
        ref = cg.get(("numpy", dtype), {})
        print(
            f"numpy {dtype}: {r['seconds_per_load_case']:.3f} s/load case, {max(r['iterations'].values())} iterations, "
            f"peak RSS {r['peak_rss_mb']:.0f} MB; C11 {r['C11']:.4f} vs rotated {ref.get('C11', float('nan')):.4f} "
            f"({100 * (r['C11'] / ref.get('C11', float('nan')) - 1):+.1f} %)"
        )
    print("\nPyMKS/SfePy: not run (not a dependency, see this file's docstring).")


if __name__ == "__main__":
    main()
