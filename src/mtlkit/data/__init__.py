"""Multi-task data: tensors + per-task masks, tables, splits."""

from mtlkit.data._dataset import MultiTaskData, collate, from_torch_dataset
from mtlkit.data._preprocess import Standardizer
from mtlkit.data._split import split, split_indices
from mtlkit.data._table import from_arrays, from_dataframe, load_images, read_table

__all__ = ["MultiTaskData", "Standardizer", "collate", "from_arrays", "from_dataframe", "from_torch_dataset",
           "load_images", "read_table", "split", "split_indices"]
