"""Benchmark: training-step throughput of the paper configuration per reconstruction loss, inference time, peak memory.

Run: ``.venv/bin/python benchmarks/bench_model.py [--steps 4] [--cases fp32,channels_last,bf16,compile]
[--losses two-point,bce,style-vgg19] [--threads N]``. Each (loss, variant) case runs in its own
process so that its peak resident memory is its own. ``style-vgg19`` uses the VGG19 cache
(``vaereg vgg19 convert``) when present, else random VGG19 weights (same cost).

Variants: ``fp32`` (plain), ``channels_last`` (channels_last_3d memory format for input and
model), ``bf16`` (CPU autocast to bfloat16), ``compile`` (``torch.compile`` of the network).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from vaereg_core.model.config import named_config
from vaereg_core.model.losses import VAERegLoss
from vaereg_core.model.networks import VAERegression
from vaereg_core.model.vgg import default_weights_path


def vgg_weights(folder: Path) -> str:
    """The converted VGG19 cache, or a random torchvision VGG19 ``features`` written to ``folder``."""
    if default_weights_path().is_file():
        return str(default_weights_path())
    from torchvision.models.vgg import cfgs, make_layers

    path = folder / "vgg19_random.pth"
    torch.save(make_layers(cfgs["E"]).state_dict(), path)
    return str(path)


def run_case(loss_name: str, variant: str, steps: int, batch: int, style_slices: int | None, folder: Path) -> dict:
    """Time training steps and inference of the paper configuration in this process."""
    config = named_config("paper")
    loss_config = dataclasses.replace(config.loss, reconstruction=loss_name, style_slices=style_slices)
    if loss_name == "style-vgg19":
        loss_config = dataclasses.replace(loss_config, vgg_weights=vgg_weights(folder))
    torch.manual_seed(0)
    net = VAERegression(config.model)
    loss = VAERegLoss(loss_config)
    x = (torch.rand(batch, 1, 51, 51, 51) > 0.5).float()
    y = torch.randn(batch, 1)
    if variant == "channels_last":
        net = net.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    model = torch.compile(net) if variant == "compile" else net
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-4)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
            terms = loss(model(x), x, y)
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        optimizer.step()

    step()  # warm-up (and compilation)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    train_seconds = (time.perf_counter() - start) / steps
    net.eval()
    one = x[:1]
    # Inference (trunk + regressor, what `predict` runs) of the eager network, one structure at a time.
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
        net.regressor(net.trunk(one))
        start = time.perf_counter()
        for _ in range(10):
            net.regressor(net.trunk(one))
        infer_ms = (time.perf_counter() - start) / 10 * 1e3
    return {
        "loss": loss_name,
        "variant": variant,
        "threads": torch.get_num_threads(),
        "samples_per_s": batch / train_seconds,
        "step_s": train_seconds,
        "predict_ms": infer_ms,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per case (after one warm-up)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--losses", default="two-point,bce,style-vgg19")
    parser.add_argument("--cases", default="fp32,channels_last,bf16")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--style-slices", type=int, default=4, help="style loss: random slices per axis (0 = all 51)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # LOSS:VARIANT, run in a child process
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.case:
        loss_name, variant = args.case.split(":")
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(run_case(loss_name, variant, args.steps, args.batch, args.style_slices or None, Path(folder))))
        return
    print(f"paper config (51³, 16-d latent, C11, GM K=2), batch {args.batch}, {args.steps} timed steps, torch {torch.__version__}")
    print(f"{'loss':<12}{'variant':<15}{'threads':>8}{'samples/s':>11}{'step s':>9}{'predict ms':>12}{'peak MB':>9}")
    for loss_name in args.losses.split(","):
        for variant in args.cases.split(","):
            command = [sys.executable, __file__, "--case", f"{loss_name}:{variant}", "--steps", str(args.steps),
                       "--batch", str(args.batch), "--style-slices", str(args.style_slices)]
            if args.threads:
                command += ["--threads", str(args.threads)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{loss_name:<12}{variant:<15} failed: {done.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{r['loss']:<12}{r['variant']:<15}{r['threads']:>8}{r['samples_per_s']:>11.2f}{r['step_s']:>9.2f}{r['predict_ms']:>12.1f}{r['peak_rss_mb']:>9.0f}")


if __name__ == "__main__":
    main()
