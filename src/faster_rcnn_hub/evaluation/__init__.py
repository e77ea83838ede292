"""Evaluation of a detector on a COCO-format data set: COCO box AP (through pycocotools) and Pascal VOC mAP@0.5."""

from .coco_metrics import COCO_METRIC_NAMES, coco_box_metrics
from .predict import exported_coco_results, predict_coco_results
from .voc_map import voc_mean_average_precision

__all__ = [
    "COCO_METRIC_NAMES",
    "coco_box_metrics",
    "exported_coco_results",
    "predict_coco_results",
    "voc_mean_average_precision",
]
