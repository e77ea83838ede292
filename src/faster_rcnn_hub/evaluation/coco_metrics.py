"""COCO box AP and mask AP through pycocotools, the reference implementation of the COCO metrics."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..data.coco_masks import mask_to_rle, segmentation_problems, segmentation_to_mask
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
    return _coco_metrics(ground_truth, [dict(result) for result in results], "bbox")


def coco_mask_metrics(ground_truth: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """COCO mask (segm) metrics of `results` against `ground_truth`'s `segmentation`s.

    As mmdetection's `CocoMetric` does for masks, each detection's `bbox` is left out, so that pycocotools takes
    its area (for the size ranges) from the mask.

    Args:
        ground_truth: A COCO data set whose annotations all have a `segmentation` (polygons or RLE).
        results: Detections with `image_id`, `category_id`, `score` and `segmentation`: a binary `(H, W)` mask
            (NumPy array or tensor, in the image's pixels) or COCO RLE (`counts` text, bytes or run lengths).

    Returns:
        The metrics of `coco_box_metrics`, for masks.

    Raises:
        FasterRCNNHubError: A detection has no `segmentation`, or a ground-truth object has none.
    """
    lacking = [annotation.get("id") for annotation in ground_truth["annotations"] if not annotation.get("segmentation")]
    if lacking:
        raise FasterRCNNHubError(
            f"Mask AP needs every ground-truth object's segmentation; {len(lacking)} annotation(s) have none "
            f"(ids {lacking[:5]}...)."
        )
    converted = [{key: value for key, value in result.items() if key != "bbox"} for result in with_rle_masks(results)]
    return _coco_metrics(ground_truth, converted, "segm")


def with_rle_masks(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`results` with every `segmentation` as COCO RLE with text `counts` (JSON-ready): binary masks encoded,
    RLE kept.

    Raises:
        FasterRCNNHubError: A detection has no `segmentation`, or one that is neither a 2-D mask nor RLE.
    """
    converted = []
    for position, result in enumerate(results):
        if "segmentation" not in result:
            raise FasterRCNNHubError(
                f"Mask AP needs a segmentation for every detection; detection {position} has none."
            )
        converted.append(dict(result) | {"segmentation": _result_rle(result["segmentation"], position)})
    return converted


def _result_rle(segmentation: Any, position: int) -> dict[str, Any]:
    """A detection's mask as COCO RLE with text `counts`: binary masks and run-length lists are encoded (pycocotools
    scores compressed RLE only), compressed RLE is kept."""
    if isinstance(segmentation, Mapping):
        problems = segmentation_problems(segmentation)
        if problems:
            raise FasterRCNNHubError(f"Detection {position}: {problems[0]}.")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            return mask_to_rle(segmentation_to_mask(segmentation, *segmentation["size"]))
        return {"size": list(segmentation["size"]), "counts": counts.decode("ascii") if isinstance(counts, bytes)
                else counts}  # fmt: skip
    if hasattr(segmentation, "detach"):
        segmentation = segmentation.detach().cpu().numpy()
    mask = np.asarray(segmentation)
    if mask.ndim != 2:
        raise FasterRCNNHubError(
            f"Detection {position}'s segmentation must be a binary (height, width) mask or COCO RLE, got an array of "
            f"shape {mask.shape}."
        )
    return mask_to_rle(mask > 0.5 if mask.dtype.kind == "f" else mask != 0)


def _coco_metrics(ground_truth: Mapping[str, Any], results: list[dict[str, Any]], iou_type: str) -> dict[str, Any]:
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
        detections = coco.loadRes(results)
        evaluator = COCOeval(coco, detections, iouType=iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            evaluator.summarize()
    metrics: dict[str, Any] = {name: float(value) for name, value in zip(COCO_METRIC_NAMES, evaluator.stats[:6])}
    metrics["summary"] = summary.getvalue().rstrip()
    return metrics
