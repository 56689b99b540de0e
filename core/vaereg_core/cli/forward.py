"""``vaereg fit-ensemble``: the forward ensemble (symmetry-averaged members, weights and ± fitted on the validation split)."""

from __future__ import annotations

import argparse

from vaereg_core.cli.arguments import existing_file, existing_path, nonnegative_int, output_dir, positive_int
from vaereg_core.cli.settings import add_device
from vaereg_core.symmetry import SYMMETRY_SETS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the forward-ensemble command."""
    p = subparsers.add_parser(
        "fit-ensemble",
        help="fit the forward ensemble of a model and other networks; write its manifest beside the model and a report",
        description="Every member predicts each validation and test structure and its cube-symmetric copies "
        "(cached, resumable: rerun after a kill to continue); per-constant weights and a ± scale are fitted "
        "on the validation split, the report compares members, symmetry averaging and the ensemble on the "
        "test split with the paper's rows. The manifest MODEL.forward.json makes `vaereg predict`, design "
        "and the app use the ensemble.",
    )
    p.add_argument("--model", required=True, type=existing_path, help="the model file the ensemble belongs to (a member itself)")
    p.add_argument("--member", action="append", default=[], metavar="MODEL", type=existing_path, help="another network predicting the same constants (repeatable)")
    p.add_argument("--data", required=True, type=existing_file, help="dataset file: the property table (structures regenerated from its recipe) or a `vaereg dataset materialize` cache")
    p.add_argument("--report", required=True, metavar="DIR", type=output_dir, help="report folder (report.md, metrics.json)")
    p.add_argument("--symmetries", choices=SYMMETRY_SETS, default="permutations", help="cube symmetries each member averages over")
    p.add_argument("--no-latent-svr", action="store_true", help="no SVR on the model's latent means among the members")
    p.add_argument("--feature-head", action="store_true", help="also a head on all networks' trunk features side by side, "
                   "cross-fitted on the validation split's symmetric copies (the features are cached with the predictions)")
    p.add_argument("--head-data", action="append", default=[], metavar="FILE", type=existing_file,
                   help="a dataset table of the same recipe with another seed (`vaereg dataset build --seed`) whose every "
                   "structure also trains the feature head (repeatable; needs --feature-head)")
    p.add_argument("--cache", default="data/forward-cache", metavar="DIR", type=output_dir, help="per-member predictions (resumable)")
    p.add_argument("--val-structures", type=positive_int, metavar="N", help="fit on N random validation structures (default all)")
    p.add_argument("--test-structures", type=positive_int, metavar="N", help="report on N random test structures (default all)")
    p.add_argument("--study", type=nonnegative_int, default=0, metavar="N", help="also run all 48 symmetries on N test structures and tabulate each set")
    p.add_argument("--no-manifest", action="store_true", help="only the report")
    add_device(p)
    p.set_defaults(func=_fit_ensemble)


def _fit_ensemble(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vaereg_core.model.ensemble import manifest_path
    from vaereg_core.model.ensemble_fit import fit_ensemble

    for option in ("val_structures", "test_structures"):
        value = getattr(args, option)
        if value is not None and value < 2:
            raise ValueError(f"--{option.replace('_', '-')} must be at least 2, got {value}")
    if args.head_data and not args.feature_head:
        raise ValueError("--head-data trains the feature head: add --feature-head")
    if args.study < 0:
        raise ValueError(f"--study must be 0 or more, got {args.study}")
    bars: dict[str, tqdm] = {}

    def progress(what: str, done: int, total: int) -> None:
        bar = bars.setdefault(what, tqdm(total=total, desc=what, unit="structure"))
        bar.n = done
        bar.refresh()

    metrics = fit_ensemble(args.model, args.member, args.data, args.report, symmetries=args.symmetries, cache=args.cache,
                           val_structures=args.val_structures, test_structures=args.test_structures,
                           study_structures=args.study, latent_svr=not args.no_latent_svr, feature_head=args.feature_head,
                           head_data=args.head_data, write=not args.no_manifest, device=args.device, progress=progress)
    for bar in bars.values():
        bar.close()
    ensemble = metrics["ensemble"]
    mape = "  ".join(f"{n} {v:.2f}" for n, v in zip(metrics["properties"], metrics["rows"][ensemble]["MAPE"]))
    print(f"test MAPE % of the ensemble: {mape}")
    print(f"report in {args.report}/report.md" + ("" if args.no_manifest else f"; manifest {manifest_path(args.model)}"))
    return 0
