"""Pascal VOC-style mean average precision at one IoU threshold (0.5 by default), written out in full."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

AP_MODES = ("area", "11points")


def _iou_with(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    widths = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    heights = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    overlaps = widths * heights
    areas = (box[2] - box[0]) * (box[3] - box[1])
    other_areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return overlaps / np.maximum(areas + other_areas - overlaps, np.finfo(np.float64).eps)


def average_precision(recalls: np.ndarray, precisions: np.ndarray, mode: str = "area") -> float:
    """Area under the precision-recall curve made monotone (`"area"`, VOC 2010+), or VOC 2007's 11-point mean."""
    if mode not in AP_MODES:
        raise ValueError(f"mode must be one of {AP_MODES}, got {mode!r}.")
    if mode == "11points":
        points = []
        for threshold in np.linspace(0, 1, 11):
            reached = precisions[recalls >= threshold]
            points.append(reached.max() if reached.size else 0.0)
        return float(np.mean(points))
    recall_steps = np.concatenate([[0.0], recalls, [1.0]])
    precision_envelope = np.concatenate([[0.0], precisions, [0.0]])
    for index in range(len(precision_envelope) - 2, -1, -1):
        precision_envelope[index] = max(precision_envelope[index], precision_envelope[index + 1])
    changes = np.flatnonzero(recall_steps[1:] != recall_steps[:-1])
    return float(np.sum((recall_steps[changes + 1] - recall_steps[changes]) * precision_envelope[changes + 1]))


def _xyxy(bbox: Sequence[float]) -> list[float]:
    x, y, width, height = (float(value) for value in bbox)
    return [x, y, x + width, y + height]


def voc_mean_average_precision(
    ground_truth: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    iou_threshold: float = 0.5,
    mode: str = "area",
) -> dict[str, Any]:
    """Mean over classes of the average precision at `iou_threshold`, as Pascal VOC defines it.

    Detections of a class are ranked by score over the whole data set; each is a true positive when it
    overlaps a not-yet-matched ground-truth box of its class in its image with IoU >= `iou_threshold`, else a
    false positive. Crowd boxes (`iscrowd`) play VOC's "difficult": a detection on one counts neither way, and
    they are not counted as objects to find. Boxes are continuous coordinates (no "+1" pixel).

    Args:
        ground_truth: A COCO detection data set.
        results: Detections in COCO results format.
        iou_threshold: IoU at which a detection finds an object.
        mode: `"area"` (all-point interpolation, VOC 2010+) or `"11points"` (VOC 2007).

    Returns:
        `mAP` (mean over the classes that have ground truth), and `per_class`: category id -> AP.
    """
    objects: dict[tuple[Any, Any], list[list[float]]] = defaultdict(list)
    crowd: dict[tuple[Any, Any], list[list[float]]] = defaultdict(list)
    counts: dict[Any, int] = defaultdict(int)
    for annotation in ground_truth["annotations"]:
        key = (annotation["image_id"], annotation["category_id"])
        if annotation.get("iscrowd", 0):
            crowd[key].append(_xyxy(annotation["bbox"]))
        else:
            objects[key].append(_xyxy(annotation["bbox"]))
            counts[annotation["category_id"]] += 1

    per_class: dict[Any, float] = {}
    for category in sorted({category["id"] for category in ground_truth["categories"]}):
        if counts[category] == 0:
            continue
        detections = sorted(
            (result for result in results if result["category_id"] == category),
            key=lambda result: -float(result["score"]),
        )
        matched: dict[tuple[Any, Any], np.ndarray] = {}
        true_positives, false_positives = [], []
        for detection in detections:
            key = (detection["image_id"], category)
            boxes = np.asarray(objects.get(key, []) + crowd.get(key, []), dtype=np.float64).reshape(-1, 4)
            num_objects = len(objects.get(key, []))
            ious = _iou_with(np.asarray(_xyxy(detection["bbox"])), boxes) if len(boxes) else np.zeros(0)
            best = int(ious.argmax()) if ious.size else -1
            if best >= 0 and ious[best] >= iou_threshold:
                if best >= num_objects:
                    continue  # on a crowd ("difficult") box: neither right nor wrong
                found = matched.setdefault(key, np.zeros(num_objects, dtype=bool))
                if not found[best]:
                    found[best] = True
                    true_positives.append(1)
                    false_positives.append(0)
                    continue
            # No object overlapped enough, or the object was already found by a higher-scoring detection.
            true_positives.append(0)
            false_positives.append(1)
        true_cumulative = np.cumsum(true_positives, dtype=np.float64)
        false_cumulative = np.cumsum(false_positives, dtype=np.float64)
        recalls = true_cumulative / counts[category]
        precisions = true_cumulative / np.maximum(true_cumulative + false_cumulative, np.finfo(np.float64).eps)
        per_class[category] = average_precision(recalls, precisions, mode) if len(recalls) else 0.0
    mean = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return {"mAP": mean, "per_class": per_class}
