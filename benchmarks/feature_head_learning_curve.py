"""Study: would more fresh labelled structures bring the feature head to the forward goals (issue 16)?

Run: ``.venv/bin/python benchmarks/feature_head_learning_curve.py [--data resources/dataset/elastic.h5] [--cache data/forward-cache]``.

The ensemble's feature head is trained on the validation split, because the networks' trunks over-fit their own
training structures. More structures the trunks never saw (generated and solved anew) would give it more to learn
from; this measures what that could buy before any is made. The head is trained exactly as ``vaereg fit-ensemble
--feature-head`` trains it (2-fold cross-fitting for its epoch count, then the whole subset) on nested random subsets
of the validation split, and its own test-split MAPE is printed per size, with a straight line in log n fitted
through the diagonal's points (four noisy points do not pin down a saturating curve: a power law fitted to
them ran off to an exponent of 0) and read at 2× and 4× the validation split.

Uses the cached cyclic predictions and trunk features that ``fit-ensemble --feature-head`` writes (computed, and
cached, if missing: ~0.06 s a structure and network on 2 cores, and ~0.04 s to generate each structure).
Measured since (session 13, ``fit-ensemble --head-data``): the line over-promises. With 4,022 fresh structures
beside the 1,920 validation ones the head's diagonal was 4.03 % where the line read 3.43 % (docs/model-card.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vaereg_core.model.ensemble_fit import SplitPredictions, cached_predictions, head_predictions, train_feature_head
from vaereg_core.model.inference import load_model
from vaereg_core.symmetry import symmetries_for

SIZES = (480, 960, 1440, 1920)


def mape(log_mean: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-constant MAPE (%) of the symmetry-averaged prediction, log_mean (N, T, P)."""
    return 100 * np.mean(np.abs(np.exp(log_mean.mean(1)) - truth) / truth, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resources/models/elastic-6-gm.pt")
    parser.add_argument("--member", default="resources/models/elastic-6-reg-only.pt")
    parser.add_argument("--data", default="resources/dataset/elastic.h5")
    parser.add_argument("--cache", default="data/forward-cache")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    models = [load_model(p, "cpu", ensemble=False) for p in (args.model, args.member)]
    names = tuple(models[0].property_names)
    which = symmetries_for(names, "cyclic")
    cache = Path(args.cache)
    val = [cached_predictions(m, args.data, "val", which, cache, tag="cyclic", features=True) for m in models]
    test = [cached_predictions(m, args.data, "test", which, cache, tag="cyclic", features=True) for m in models]
    order = np.random.default_rng(args.seed).permutation(len(val[0].truth))
    print(f"feature head alone, test-split MAPE % ({len(test[0].truth)} structures); trained on n validation structures")
    print("n      " + " ".join(f"{n:>6}" for n in names) + "   diagonal")
    rows = []
    for n in SIZES:
        keep = np.sort(order[:n])
        subset = [SplitPredictions(s.mean[keep], s.var[keep], s.truth[keep], None, s.features[keep]) for s in val]
        head, _, _ = train_feature_head(subset, which, names, tuple(m.file.checksum for m in models), seed=args.seed)
        figures = mape(head_predictions(head, test, which).mean, test[0].truth)
        rows.append(figures)
        print(f"{n:<6} " + " ".join(f"{v:6.2f}" for v in figures) + f"   {figures[:3].mean():.3f}", flush=True)
    diagonal = np.array([r[:3].mean() for r in rows])
    slope, intercept = np.polyfit(np.log2(SIZES), diagonal, 1)
    biggest = SIZES[-1]
    print(f"diagonal MAPE, straight line in log2 n: {slope:+.2f} % per doubling; read at {2 * biggest} structures "
          f"{intercept + slope * np.log2(2 * biggest):.2f} %, at {4 * biggest} {intercept + slope * np.log2(4 * biggest):.2f} % "
          "(an extrapolation: the line cannot bend as a saturating curve would)")


if __name__ == "__main__":
    main()
