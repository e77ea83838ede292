"""Converting mmdetection Faster R-CNN checkpoints (no mmcv or mmdetection needed)."""

from .checkpoint import MMDetCheckpoint, load_mmdet_checkpoint
from .config_mapping import ConversionSettings, settings_from_mmdet_config
from .convert import ConversionResult, convert_checkpoint
from .mmdet_config import load_config_file, parse_config_text
from .state_dict import convert_state_dict, rename_key

__all__ = [
    "ConversionResult",
    "ConversionSettings",
    "MMDetCheckpoint",
    "convert_checkpoint",
    "convert_state_dict",
    "load_config_file",
    "load_mmdet_checkpoint",
    "parse_config_text",
    "rename_key",
    "settings_from_mmdet_config",
]
