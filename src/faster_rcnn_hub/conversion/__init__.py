"""Converting mmdetection Faster R-CNN checkpoints (no mmcv or mmdetection needed).

Names load on first use: the config mapping (`config_mapping.py`, plain Python) answers `faster-rcnn-hub zoo`
without the torch that reading checkpoints needs.
"""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "MMDetCheckpoint": ".checkpoint",
        "load_mmdet_checkpoint": ".checkpoint",
        "ConversionSettings": ".config_mapping",
        "SupportStatus": ".config_mapping",
        "settings_from_mmdet_config": ".config_mapping",
        "zoo_support": ".config_mapping",
        "ConversionResult": ".convert",
        "convert_checkpoint": ".convert",
        "load_config_file": ".mmdet_config",
        "parse_config_text": ".mmdet_config",
        "convert_state_dict": ".state_dict",
        "rename_key": ".state_dict",
    },
)

if TYPE_CHECKING:
    from .checkpoint import MMDetCheckpoint, load_mmdet_checkpoint
    from .config_mapping import ConversionSettings, SupportStatus, settings_from_mmdet_config, zoo_support
    from .convert import ConversionResult, convert_checkpoint
    from .mmdet_config import load_config_file, parse_config_text
    from .state_dict import convert_state_dict, rename_key

__all__ = [
    "ConversionResult",
    "ConversionSettings",
    "MMDetCheckpoint",
    "SupportStatus",
    "convert_checkpoint",
    "convert_state_dict",
    "load_config_file",
    "load_mmdet_checkpoint",
    "parse_config_text",
    "rename_key",
    "settings_from_mmdet_config",
    "zoo_support",
]
