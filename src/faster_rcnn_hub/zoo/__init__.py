"""mmdetection's Faster R-CNN, Cascade R-CNN and (Cascade) Mask R-CNN model zoo by name: the table (`table.py`,
`model_zoo.json`) and the download of its checkpoints into a cache (`download.py`, imported on its own: it needs
huggingface_hub's progress bar)."""

from .table import (
    TABLE_FILE,
    UnknownModelError,
    ZooEntry,
    compact_mmdet_config,
    find_zoo_entry_by_sha256,
    get_zoo_entry,
    zoo_entries,
)

__all__ = [
    "TABLE_FILE",
    "UnknownModelError",
    "ZooEntry",
    "compact_mmdet_config",
    "find_zoo_entry_by_sha256",
    "get_zoo_entry",
    "zoo_entries",
]
