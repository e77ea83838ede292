"""Running a detector over a COCO-format data set and writing its detections in COCO results format."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
from ..runtime.exported_detector import ExportedDetector


def _coco_result(image_id: Any, category_id: int, box: list[float], score: float) -> dict[str, Any]:
    x1, y1, x2, y2 = box
    return {
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
        "score": round(score, 5),
    }


def exported_coco_results(
    detector: ExportedDetector,
    dataset: Any,
    label_to_category_id: Mapping[int, int],
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """`predict_coco_results` for an exported model (ONNX Runtime or OpenVINO, `faster-rcnn-hub export`, float32
    or INT8): every detection its graph keeps on each image of `dataset`, one image per run, in COCO results format.

    Args:
        detector: The export folder in its runtime (`faster_rcnn_hub.runtime.open_exported`).
        dataset: Items with `image` (uint8 RGB array) and `annotations["image_id"]`.
        label_to_category_id: Model class index -> COCO category id; classes without a category are dropped.
        progress: Called with the number of images done.
    """
    results: list[dict[str, Any]] = []
    for index in range(len(dataset)):
        sample = dataset[index]
        for detection in detector.detect(sample["image"], threshold=0.0):
            if detection["label_id"] in label_to_category_id:
                results.append(_coco_result(sample["annotations"]["image_id"],
                                            label_to_category_id[detection["label_id"]], detection["box"],
                                            detection["score"]))  # fmt: skip
        if progress is not None:
            progress(index + 1)
    return results


def _segmented_results(
    model: torch.nn.Module,
    processor: FasterRCNNImageProcessor,
    outputs: Any,
    samples: list[dict[str, Any]],
    label_to_category_id: Mapping[int, int],
) -> list[dict[str, Any]]:
    """A Mask R-CNN's detections of a batch, each with its mask pasted into the original image (at the model's
    `mask_threshold`, as mmdetection evaluates) as COCO RLE in `segmentation`."""
    instances = processor.post_process_instance_segmentation(
        outputs, threshold=0.0, return_coco_annotation=True, mask_threshold=model.config.mask_head["mask_threshold"]
    )
    results = []
    for sample, found in zip(samples, instances):
        image_id = sample["annotations"]["image_id"]
        for info, segmentation in zip(found["segments_info"], found["segmentation"]):
            if info["label_id"] not in label_to_category_id:
                continue
            result = _coco_result(image_id, label_to_category_id[info["label_id"]], list(info["box"]), info["score"])
            results.append(result | {"segmentation": segmentation})
    return results


@torch.no_grad()
def predict_coco_results(
    model: torch.nn.Module,
    processor: FasterRCNNImageProcessor,
    dataset: Any,
    label_to_category_id: Mapping[int, int],
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Detections of `model` on every image of `dataset` (a `CocoDetectionDataset`), in COCO results format.

    Every detection the model returns is kept (its own score threshold and per-image limit apply, as in
    mmdetection's evaluation). Boxes are `[x, y, width, height]` in original-image pixels; a Mask R-CNN's
    detections also carry `segmentation`, each one's mask in the original image as COCO RLE.

    Args:
        model: The detector; it is put in eval mode for the run and back in its previous mode afterwards.
        processor: Its image processor.
        dataset: Items with `image` and `annotations["image_id"]` (and `proposals`, boxes in original pixels, for a
            Fast R-CNN: the model then runs its RoI head on them).
        label_to_category_id: Model class index -> COCO category id; classes without a category are dropped.
        batch_size: Images per forward pass.
        progress: Called with the number of images done.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    results: list[dict[str, Any]] = []
    try:
        for start in range(0, len(dataset), batch_size):
            samples = [dataset[index] for index in range(start, min(start + batch_size, len(dataset)))]
            proposals = [sample["proposals"] for sample in samples] if "proposals" in samples[0] else None
            inputs = processor(images=[sample["image"] for sample in samples], device=device, proposals=proposals)
            outputs = model(**inputs)
            if outputs.pred_masks is not None:
                results.extend(_segmented_results(model, processor, outputs, samples, label_to_category_id))
                continue
            detections = processor.post_process_object_detection(outputs, threshold=0.0)
            for sample, detection in zip(samples, detections):
                image_id = sample["annotations"]["image_id"]
                for score, label, box in zip(
                    detection["scores"].tolist(), detection["labels"].tolist(), detection["boxes"].tolist()
                ):
                    if label not in label_to_category_id:
                        continue
                    results.append(_coco_result(image_id, label_to_category_id[label], box, score))
            if progress is not None:
                progress(min(start + batch_size, len(dataset)))
    finally:
        model.train(was_training)
    return results
