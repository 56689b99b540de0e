"""Benchmark: `vaereg predict` cost per 51³ structure after the model is loaded, per symmetry set and for the ensemble.

Run: ``.venv/bin/python benchmarks/bench_predict.py [--model resources/models/elastic-6-gm.pt] [--repeats 5]``.
One process, cases interleaved round-robin so that machine noise hits all alike; prints the median
seconds per structure and the ratio to the plain network (one forward pass). The goal of the forward
ensemble is ≤ 0.5 s per structure on the 2-core CPU with averaging on.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vaereg_core.microstructure import Recipe
from vaereg_core.model.inference import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resources/models/elastic-6-gm.pt")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, "cpu")
    recipe = Recipe(size=model.grid)
    voxels = recipe.structure(0, 5)
    cases = {
        "network alone (identity)": lambda: model.predict(voxels, "identity"),
        "own regressor, cyclic (3)": lambda: model.predict(voxels, "cyclic"),
        "own regressor, permutations (6)": lambda: model.predict(voxels, "permutations"),
    }
    if model.forward is not None:
        cases[f"default: {model.describe_forward()}"] = lambda: model.predict(voxels)
    for run in cases.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["network alone (identity)"])
    print(f"{args.model}, one {model.grid}³ structure, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<70} {median:6.3f} s   {median / base:4.1f}x")


if __name__ == "__main__":
    main()
