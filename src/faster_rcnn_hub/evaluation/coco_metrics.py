"""COCO box AP through pycocotools, the reference implementation of the COCO metrics."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import FasterRCNNHubError

# The first six numbers of `COCOeval.summarize()`, under mmdetection's names.
COCO_METRIC_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:
        raise FasterRCNNHubError(
            "COCO evaluation needs pycocotools: pip install 'faster-rcnn-hub[train]' (or pycocotools==2.0.11)."
        ) from error
    return COCO, COCOeval


def coco_box_metrics(ground_truth: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """COCO box metrics of `results` against `ground_truth`.

    Args:
        ground_truth: A COCO detection data set (`images`, `annotations`, `categories`).
        results: Detections in COCO results format: `image_id`, `category_id`, `bbox` `[x, y, w, h]`, `score`.

    Returns:
        `AP` (IoU 0.50:0.95), `AP50`, `AP75`, `AP_small`, `AP_medium`, `AP_large` in [0, 1] (-1 where the data
        set has no object of that size, as pycocotools reports it), and `summary`, pycocotools' printed table.
    """
    COCO, COCOeval = _pycocotools()
    dataset = copy.deepcopy(dict(ground_truth))
    dataset.setdefault("info", {})
    for annotation in dataset["annotations"]:
        # pycocotools needs `area` (for the size ranges) and `iscrowd`; fill them as COCO defines them.
        annotation.setdefault("area", float(annotation["bbox"][2]) * float(annotation["bbox"][3]))
        annotation.setdefault("iscrowd", 0)
    if not results:
        return {name: 0.0 for name in COCO_METRIC_NAMES} | {"summary": "no detections"}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
        detections = coco.loadRes([dict(result) for result in results])
        evaluator = COCOeval(coco, detections, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            evaluator.summarize()
    metrics: dict[str, Any] = {name: float(value) for name, value in zip(COCO_METRIC_NAMES, evaluator.stats[:6])}
    metrics["summary"] = summary.getvalue().rstrip()
    return metrics
