"""Plots and a range table describing a dataset file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vaereg_core.dataset.subsets import TWO_MORPHOLOGY_FILTERS, in_two_morphology
from vaereg_core.dataset.table import PROPERTY_NAMES, read_table
from vaereg_core.microstructure import FILTERS, filter_index


def write_report(table_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write PNG plots and ``README.md`` (counts, ranges) describing a dataset.

    Files: ``c11_vs_volume_fraction.png`` (coloured by filter anisotropy),
    ``two_morphology.png`` (the subset's two C11 curves),
    ``histograms.png`` (the six constants) and ``README.md``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = read_table(table_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    props, vf, filt = table.properties, table.volume_fraction, table.filter_index
    sig = np.array(FILTERS)[filt]
    # Elongation along x relative to the other axes orders the C11 curves.
    anisotropy = np.log2(sig[:, 0]) - 0.5 * (np.log2(sig[:, 1]) + np.log2(sig[:, 2]))

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    points = ax.scatter(vf, props[:, 0], c=anisotropy, cmap="coolwarm", s=6)
    fig.colorbar(points, ax=ax, label="log2 sigma_x - mean log2 (sigma_y, sigma_z)")
    ax.set(xlabel="hard-phase volume fraction", ylabel="C11 (GPa)", title=f"C11 of {len(table)} structures by filter shape")
    fig.tight_layout()
    fig.savefig(out / "c11_vs_volume_fraction.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    for sigma, colour in zip(TWO_MORPHOLOGY_FILTERS, ("tab:red", "tab:blue")):
        rows = filt == filter_index(sigma)
        ax.scatter(vf[rows], props[rows, 0], s=10, color=colour, label=f"sigma {sigma} ({rows.sum()} structures)")
    ax.set(xlabel="hard-phase volume fraction", ylabel="C11 (GPa)", title="Two-morphology subset")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "two_morphology.png")
    plt.close(fig)

    fig, axes = plt.subplots(2, 3, figsize=(10, 5.6), dpi=110)
    for j, ax in enumerate(axes.ravel()):
        ax.hist(props[:, j], bins=40, color="tab:gray")
        ax.set(xlabel=f"{PROPERTY_NAMES[j]} (GPa)", ylabel="structures" if j % 3 == 0 else None)
    fig.tight_layout()
    fig.savefig(out / "histograms.png")
    plt.close(fig)

    two = in_two_morphology(filt)
    lines = [
        f"# Dataset report: `{Path(table_path).name}`",
        "",
        f"{len(table)} of {table.recipe.n_structures} structures computed "
        f"({int(two.sum())} of {2 * table.recipe.n_fields} in the two-morphology subset); {len(table.failures)} failed.",
        f"Recipe: `{table.recipe.to_dict()}`; solver: `{table.solver}`; split seed {table.split_seed}.",
        f"Solver iterations per load case: median {np.median(table.iterations):.0f}, max {table.iterations.max() if len(table) else 0}.",
        "",
        "| property | min | 5 % | median | 95 % | max | mean | std |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for j, name in enumerate(PROPERTY_NAMES):
        col = props[:, j]
        q = np.percentile(col, [0, 5, 50, 95, 100]) if len(table) else [np.nan] * 5
        lines.append(f"| {name} (GPa) | " + " | ".join(f"{v:.2f}" for v in q) + f" | {col.mean():.2f} | {col.std():.2f} |")
    lines.append(f"| volume fraction | {vf.min():.3f} | | {np.median(vf):.3f} | | {vf.max():.3f} | {vf.mean():.3f} | {vf.std():.3f} |")
    lines += [
        "",
        "![C11 vs volume fraction](c11_vs_volume_fraction.png)",
        "![two-morphology subset](two_morphology.png)",
        "![histograms](histograms.png)",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))
    return out
