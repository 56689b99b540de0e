"""Named subsets of the recipe's (field, filter) pairs."""

from __future__ import annotations

from vaereg_core.microstructure import FILTERS, Recipe, filter_index

TWO_MORPHOLOGY_FILTERS: tuple[tuple[int, int, int], tuple[int, int, int]] = ((8, 1, 1), (1, 8, 8))
"""The two-morphology subset (the paper's multimodal demonstration).

Needles along x (sigma 8,1,1) carry load along x almost in parallel, plates
normal to x (sigma 1,8,8) stack the phases in series along x: at the same
volume fraction their C11 differ most of any filter pair, while both curves
meet at the volume-fraction extremes. See docs/dataset/ for the curves.
"""

SUBSETS = ("two-morphology", "all")


def subset_samples(recipe: Recipe, subset: str) -> list[int]:
    """Sample numbers of a named subset, in the order the build computes them.

    ``"all"`` lists the two-morphology samples first, so that the subset the
    paper's inverse experiment needs is complete early in a long build.
    """
    two = [filter_index(s) for s in TWO_MORPHOLOGY_FILTERS]
    first = [field * len(FILTERS) + f for field in range(recipe.n_fields) for f in two]
    if subset == "two-morphology":
        return first
    if subset == "all":
        chosen = set(first)
        return first + [s for s in range(recipe.n_structures) if s not in chosen]
    raise ValueError(f"unknown subset {subset!r}; choose one of {', '.join(SUBSETS)}")


def in_two_morphology(filter_indices) -> "numpy.ndarray":  # noqa: F821
    """Boolean mask of the rows whose filter belongs to the two-morphology subset."""
    import numpy as np

    return np.isin(np.asarray(filter_indices), [filter_index(s) for s in TWO_MORPHOLOGY_FILTERS])
