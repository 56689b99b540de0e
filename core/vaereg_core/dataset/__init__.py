"""The elastic dataset: recipe enumeration, resumable property computation,
voxel cache, splits, the PyTorch ``Dataset`` and the report."""

from vaereg_core.dataset.splits import split_indices, split_of
from vaereg_core.dataset.subsets import SUBSETS, subset_samples
from vaereg_core.dataset.table import PROPERTY_NAMES, DatasetTable, read_table

__all__ = [
    "PROPERTY_NAMES",
    "SUBSETS",
    "DatasetTable",
    "read_table",
    "split_indices",
    "split_of",
    "subset_samples",
]


def __getattr__(name: str):
    # The torch Dataset is imported lazily so that table work does not load torch.
    if name == "MicrostructureDataset":
        from vaereg_core.dataset.torch_dataset import MicrostructureDataset

        return MicrostructureDataset
    raise AttributeError(name)
