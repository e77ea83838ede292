"""A small high-level API: load a converted model once, detect objects in images."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from huggingface_hub.utils import tqdm

from ..errors import FasterRCNNHubError
from ..models.faster_rcnn.batching import group_by_padded_size
from ..models.faster_rcnn.fused_inference import cpu_runs_fast
from ..models.faster_rcnn.image_io import load_image, to_rgb_array
from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection
from ..runtime.backends import open_exported
from ..runtime.exported_detector import ExportedDetector
from .devices import check_device
from .instance_mask import InstanceMask, instance_masks
from .model_folder import check_model_source

# detect_batch reads this many batches of images at a time, then runs them grouped by padded size.
_BATCHES_PER_WINDOW = 4


@dataclass
class Detection:
    """One detected object; `box` is x1, y1, x2, y2 in pixels of the input image.

    A Mask R-CNN's detections also carry their `mask` (an `InstanceMask`: `mask.to_array()` is the binary mask
    in the input image's pixels, `mask.to_rle()` its COCO RLE); a box detector's have `mask=None`.
    """

    label: str
    label_id: int
    score: float
    box: list[float]
    mask: InstanceMask | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; `mask` (COCO RLE, `{"size": [h, w], "counts": str}`) only for a mask model."""
        record: dict[str, Any] = {"label": self.label, "label_id": self.label_id, "score": self.score, "box": self.box}
        if self.mask is not None:
            record["mask"] = self.mask.to_rle()
        return record


NETWORK_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# "torch": a converted model folder run by PyTorch; "onnxruntime", "openvino": an export folder of that runtime's
# format (`faster-rcnn-hub export`).
BACKENDS = ("torch", "onnxruntime", "openvino")


class Detector:
    """A converted Faster R-CNN and its processor, ready to run.

    Args:
        model: Path or Hub id of a converted model folder; with `backend="onnxruntime"`, an export folder
            (`faster-rcnn-hub export MODEL OUTPUT --format onnx`).
        device: Where to run (`"cpu"`, `"cuda"`, ...); defaults to CUDA when available.
        dtype: The network's dtype: `"float32"` (default; mmdetection's detections), or `"bfloat16"` /
            `"float16"` for speed on GPUs and CPUs with half-precision units (box decoding and NMS stay float32).
        backend: `"torch"` (default), `"onnxruntime"` or `"openvino"`: the exported graph (`--format onnx` or
            `openvino`) on that runtime's CPU device, in float32, one image per run, with the same output format.

    Raises:
        FasterRCNNHubError: Before anything loads, naming the problem: a device this machine does not have, a
            missing folder, or a folder with a missing, invalid or truncated file or a tensor of the wrong shape
            (`check_device`, `check_model_source`).
    """

    def __init__(
        self,
        model: str | os.PathLike,
        device: str | torch.device | None = None,
        dtype: str = "float32",
        backend: str = "torch",
    ) -> None:
        if backend not in BACKENDS:
            raise FasterRCNNHubError(f"backend must be one of {list(BACKENDS)}, got {backend!r}.")
        self.backend = backend
        self.exported: ExportedDetector | None = None
        if backend != "torch":
            if dtype != "float32" or device not in (None, "cpu"):
                raise FasterRCNNHubError(
                    f"The {backend} backend runs the exported float32 graph on the CPU; got device={device!r}, "
                    f"dtype={dtype!r}. Leave both out (or pass device='cpu', dtype='float32')."
                )
            self.device = torch.device("cpu")
            self.exported = open_exported(model, backend)
            # Sizes for detect_batch's grouping; each image runs on its own.
            self.processor = self.exported.preprocessor
            self.model = None
            return
        if dtype not in NETWORK_DTYPES:
            raise FasterRCNNHubError(f"dtype must be one of {sorted(NETWORK_DTYPES)}, got {dtype!r}.")
        self.device = check_device(device)
        check_model_source(model)
        if self.device.type == "cpu" and not cpu_runs_fast(NETWORK_DTYPES[dtype]):
            warnings.warn(
                f"This CPU has no {dtype} units (torch reports ISA {torch.backends.cpu.get_cpu_capability()}): "
                f"a {dtype} network runs several times slower here than float32. Use float32 on this machine.",
                stacklevel=2,
            )
        # Cast after loading rather than from_pretrained(dtype=...), which transformers before 4.56 calls torch_dtype.
        self.model = FasterRCNNForObjectDetection.from_pretrained(str(model))
        self.model = self.model.to(device=self.device, dtype=NETWORK_DTYPES[dtype]).eval()
        self.processor = FasterRCNNImageProcessor.from_pretrained(str(model))

    def __call__(self, image: Any, threshold: float = 0.5) -> list[Detection]:
        """Detections with a score above `threshold` in one image (a path, PIL image, array or tensor)."""
        return self._detect([_to_array(image)], threshold)[0]

    def detect_batch(
        self,
        images: Sequence[Any],
        threshold: float = 0.5,
        batch_size: int = 8,
        progress: bool | None = None,
    ) -> list[list[Detection]]:
        """Detections in many images, run through the network `batch_size` images at a time.

        Images of the same padded size are batched together (the model runs each padded size as its own group,
        so mixing sizes would split a batch): the list is read a few batches at a time, grouped by padded size,
        and cut into batches. Each image gets exactly the detections `detector(image)` gives.

        Args:
            images: Paths, PIL images, arrays or tensors. Paths are read only when their turn comes.
            threshold: Keep detections with a score above this.
            batch_size: Images per forward pass.
            progress: Show a progress bar; by default, when there is more than one batch.

        Returns:
            One list of detections per image, in the order of `images`.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise FasterRCNNHubError(f"batch_size must be a positive integer, got {batch_size!r}.")
        images = list(images)
        show = progress if progress is not None else len(images) > batch_size
        results: list[list[Detection]] = [[] for _ in images]
        window = batch_size * _BATCHES_PER_WINDOW
        with tqdm(total=len(images), unit="image", desc="detecting", disable=not show) as bar:
            for start in range(0, len(images), window):
                window_images = images[start : start + window]
                arrays = {start + offset: _to_array(image) for offset, image in enumerate(window_images)}
                for indices in self._batches_by_padded_size(arrays, batch_size):
                    for index, detections in zip(indices, self._detect([arrays[i] for i in indices], threshold)):
                        results[index] = detections
                    bar.update(len(indices))
        return results

    def _batches_by_padded_size(self, arrays: dict[int, np.ndarray], batch_size: int) -> list[list[int]]:
        indices = list(arrays)
        resized_sizes = [self.processor.resized_size(*arrays[index].shape[:2]) for index in indices]
        padded_sizes = [self.processor.padded_size(*size) for size in resized_sizes]
        return [
            [indices[position] for position in positions[start : start + batch_size]]
            for _, positions in group_by_padded_size(padded_sizes)
            for start in range(0, len(positions), batch_size)
        ]

    def _detect(self, arrays: list[np.ndarray], threshold: float) -> list[list[Detection]]:
        if self.exported is not None:
            # The images of one call share a padded size (detect_batch groups them): a batched export runs
            # them together.
            return [
                [Detection(**detection) for detection in detections]
                for detections in self.exported.detect_batch(arrays, threshold)
            ]
        inputs = self.processor(images=arrays, device=self.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        id2label = self.model.config.id2label
        results = self.processor.post_process_object_detection(outputs, threshold=threshold)
        masks = self._masks(outputs, threshold) if self.model.config.mask_head is not None else None
        return [
            [
                Detection(
                    label=id2label[int(label)],
                    label_id=int(label),
                    score=float(score),
                    box=[float(v) for v in box],
                    mask=None if masks is None else masks[index][number],
                )
                for number, (score, label, box) in enumerate(
                    zip(result["scores"].cpu(), result["labels"].cpu(), result["boxes"].cpu())
                )
            ]
            for index, result in enumerate(results)
        ]

    def _masks(self, outputs: Any, threshold: float) -> list[list[InstanceMask]]:
        """Each image's kept detections' masks, pasted as `post_process_instance_segmentation` pastes them (at
        the unclamped boxes, in original-image pixels), but each kept as the window around its box."""
        mask_threshold = float(self.model.config.mask_head["mask_threshold"])
        masks = []
        for index, count in enumerate(outputs["num_detections"].tolist()):
            keep = outputs["scores"][index, :count] > threshold
            boxes = outputs["pred_boxes"][index, :count][keep]
            probabilities = outputs["pred_masks"][index, :count][keep]
            image_size = tuple(int(value) for value in outputs["original_sizes"][index].tolist())
            masks.append(instance_masks(probabilities, boxes, image_size, mask_threshold))
        return masks


def _to_array(image: Any) -> np.ndarray:
    if isinstance(image, (str, os.PathLike, bytes)):
        image = load_image(image)
    return to_rgb_array(image)
