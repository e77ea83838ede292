"""Evaluation of a detector on a COCO-format data set: COCO box and mask AP (through pycocotools), Pascal VOC
mAP@0.5."""

from .coco_metrics import COCO_METRIC_NAMES, coco_box_metrics, coco_mask_metrics, with_rle_masks
from .predict import exported_coco_results, predict_coco_results
from .voc_map import voc_mean_average_precision

__all__ = [
    "COCO_METRIC_NAMES",
    "coco_box_metrics",
    "coco_mask_metrics",
    "exported_coco_results",
    "predict_coco_results",
    "voc_mean_average_precision",
    "with_rle_masks",
]
