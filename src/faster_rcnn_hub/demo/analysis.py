"""What the demo computes for one request, without any web framework: run (or reuse) the model on an image, keep
the detections the user asked for, and turn them into an annotated picture, table rows and a JSON report."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..detection import Detection
from ..detection.drawing import draw_detections, draw_masks
from ..errors import FasterRCNNHubError, InvalidImageError
from ..models.faster_rcnn.image_io import load_image
from .gpu import on_gpu_when_available
from .last_stage import Candidates, LastStageSettings, recorder_for, rerun_last_stage
from .models import ModelCatalogue

TABLE_HEADERS = ["label", "score", "x1", "y1", "x2", "y2"]

# The annotated picture sent back to the browser is at most this many pixels on its longer side: a 6000x4000
# photo would otherwise cost tens of megabytes per request. Boxes in the table and the JSON stay in
# original-image pixels.
DISPLAY_MAX_SIDE = 1600
# ... and at least this many: a 256 px picture is shown about 650 px wide, and labels drawn at its own size
# would be either unreadable or cover the shapes; drawn on an enlarged copy they keep their proportions.
DISPLAY_MIN_SIDE = 800


@dataclass
class ModelRun:
    """Every detection the model gives for one image (score above 0), what entered its last stage (to re-run
    that stage with other settings), and how long the model took."""

    detections: list[Detection]
    seconds: float
    device: str
    candidates: Candidates
    settings: LastStageSettings


@dataclass
class DemoResult:
    """One answer of the demo: the detections kept, and what the page shows of them."""

    model: str
    image_name: str
    image_size: tuple[int, int]
    threshold: float
    classes: list[str]
    detections: list[Detection]
    annotated: Image.Image
    run: ModelRun
    cached: bool
    iou_threshold: float
    max_detections: int

    def table_rows(self) -> list[list[Any]]:
        """Rows for `TABLE_HEADERS`: scores to 3 decimals, box corners to 0.1 px."""
        return [
            [detection.label, round(detection.score, 3), *(round(value, 1) for value in detection.box)]
            for detection in self.detections
        ]

    def report(self) -> dict[str, Any]:
        """The JSON download: full-precision detections plus what produced them (a mask model's detections with
        their `mask` as COCO RLE)."""
        width, height = self.image_size
        return {
            "model": self.model,
            "image": {"name": self.image_name, "width": width, "height": height},
            "threshold": self.threshold,
            "classes": self.classes,
            "nms_iou_threshold": self.iou_threshold,
            "max_detections": self.max_detections,
            "inference_ms": round(self.run.seconds * 1000, 1),
            "device": self.run.device,
            "detections": [detection.to_dict() for detection in self.detections],
        }

    def summary(self) -> str:
        """One line of Markdown: how many detections, the model's time, the image size."""
        count = len(self.detections)
        noun = "detection" if count == 1 else "detections"
        width, height = self.image_size
        timing = f"model took **{self.run.seconds * 1000:.0f} ms** on {self.run.device}"
        if self.cached:
            timing += " (cached result)"
        scope = f" among {', '.join(self.classes)}" if self.classes else ""
        settings = self.run.settings
        if (self.iou_threshold, self.max_detections) != (settings.iou_threshold, settings.max_detections):
            scope += f" (NMS IoU {self.iou_threshold:.2f}, at most {self.max_detections})"
        if any(detection.mask is not None for detection in self.detections):
            scope += " with masks"
        counts = self.class_counts()
        per_class = " · " + ", ".join(f"{label} {number}" for label, number in counts.items()) if counts else ""
        return (
            f"**{count} {noun}** with score > {self.threshold:.2f}{scope}{per_class} · {timing} · "
            f"image {width}×{height}"
        )

    def class_counts(self) -> dict[str, int]:
        """How many detections of each class were kept, the most frequent first (ties by name)."""
        counts = Counter(detection.label for detection in self.detections)
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def select_detections(
    detections: Sequence[Detection], threshold: float, classes: Collection[str] = ()
) -> list[Detection]:
    """The detections scoring above `threshold` (whose label is in `classes`, unless that is empty).

    Scores are float32 in the model, and `FasterRCNNImageProcessor.post_process_object_detection` compares them
    with the threshold in float32; comparing against the float32 value of the threshold keeps exactly the
    detections the Python API returns for that threshold.
    """
    threshold32 = float(np.float32(threshold))
    wanted = set(classes)
    return [
        detection
        for detection in detections
        if detection.score > threshold32 and (not wanted or detection.label in wanted)
    ]


def display_scale(
    image_size: tuple[int, int], min_side: int = DISPLAY_MIN_SIDE, max_side: int = DISPLAY_MAX_SIDE
) -> float:
    """How much the annotated picture is resized for display: its longer side ends up within
    [`min_side`, `max_side`]."""
    longer = max(image_size)
    return min(max_side / longer, max(1.0, min_side / longer))


def annotate_for_display(
    image: Image.Image,
    detections: Sequence[Detection],
    min_side: int = DISPLAY_MIN_SIDE,
    max_side: int = DISPLAY_MAX_SIDE,
) -> Image.Image:
    """`image` with the detections drawn, resized first so that its longer side lies within [`min_side`,
    `max_side`] (the boxes are scaled with it, and labels are sized to the picture, so they read the same at
    the size the browser shows whatever the upload's size). A mask model's masks are drawn under the boxes."""
    scale = display_scale(image.size, min_side, max_side)
    items = [
        {"label": d.label, "label_id": d.label_id, "score": d.score, "box": list(d.box), "mask": d.mask}
        for d in detections
    ]
    # A Mask R-CNN's masks are in the image's own pixels: filled and outlined before the resize, with an outline
    # that ends up as wide as the boxes' after it.
    shown_line_width = max(1, round(max(image.size) * scale * 0.003))  # draw_detections' default box width
    image = draw_masks(image, items, outline_width=max(1, round(shown_line_width / scale)))
    for item in items:
        item["mask"] = None
    if scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        for item in items:
            item["box"] = [value * scale for value in item["box"]]
    return draw_detections(image, items)


def _release_free_memory() -> None:
    """Hand freed heap memory back to the operating system (glibc only; a no-op elsewhere).

    A server sees images of every size; without this, glibc keeps the peak of each size class around and the
    resident size of a long-running demo creeps up.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


_libc_name = ctypes.util.find_library("c")
try:
    _LIBC = ctypes.CDLL(_libc_name) if _libc_name else None
    if _LIBC is not None and not hasattr(_LIBC, "malloc_trim"):
        _LIBC = None
except OSError:
    _LIBC = None


class DetectionRunner:
    """Runs the catalogue's models and remembers the last results, so that moving the threshold or changing the
    class filter redraws at once instead of running the model again.

    Args:
        catalogue: The models to serve.
        cache_size: How many (model, image) results to keep.
        workers: How many model runs may happen at once.
    """

    def __init__(self, catalogue: ModelCatalogue, cache_size: int = 32, workers: int = 1) -> None:
        self.catalogue = catalogue
        self.cache_size = cache_size
        self._runs: OrderedDict[tuple[str, str], ModelRun] = OrderedDict()
        self._lock = threading.Lock()
        # Models run on a fixed set of threads of their own rather than on whichever of the web server's many
        # threads took the request: each thread that allocates gets its own malloc arena, and dozens of arenas
        # each holding on to peak-sized buffers is how a server's memory grows without a leak.
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="faster-rcnn-hub-model")
        # Under spaces.GPU on a ZeroGPU Space (a GPU is attached for the call), as it is elsewhere.
        self._model_call = on_gpu_when_available(self._detect)

    def __call__(
        self,
        image_path: str | Path,
        model: str,
        threshold: float = 0.5,
        classes: Sequence[str] = (),
        image_name: str | None = None,
        iou_threshold: float | None = None,
        max_detections: int | None = None,
    ) -> DemoResult:
        """Detect objects in the image file at `image_path` with the catalogue's model `model`.

        `image_name` (default: the file's name) is what the report and error messages call the image: the
        name the user uploaded rather than the server's temporary copy. `iou_threshold` and `max_detections`
        (default: the model's own) re-run only the model's last stage, per-class NMS and the cap on detections.

        Raises:
            InvalidImageError: The file is not a readable image.
            FasterRCNNHubError: Unknown model, threshold or last-stage setting out of range, or a class the model
                does not know.
        """
        if not 0.0 <= threshold <= 1.0:
            raise FasterRCNNHubError(f"The score threshold must lie in [0, 1], got {threshold}.")
        detector = self.catalogue.detector(model)
        unknown = sorted(set(classes) - set(self.catalogue.class_names(model)))
        if unknown:
            raise FasterRCNNHubError(f"Model {model!r} has no class {', '.join(map(repr, unknown))}.")
        image_name = image_name or Path(image_path).name
        try:
            data = Path(image_path).read_bytes()
        except OSError as error:
            raise InvalidImageError(f"Cannot read {image_name}: {error.strerror or error}.") from error
        image = load_image(data, name=image_name)
        key = (model, hashlib.sha256(data).hexdigest())
        with self._lock:
            run = self._runs.get(key)
            if run is not None:
                self._runs.move_to_end(key)
        cached = run is not None
        if run is None:
            start = time.perf_counter()
            detections, candidates = self._executor.submit(self._model_call, detector, image).result()
            run = ModelRun(
                detections=detections, seconds=time.perf_counter() - start, device=str(detector.device),
                candidates=candidates, settings=LastStageSettings.of(detector.model),
            )  # fmt: skip
            with self._lock:
                self._runs[key] = run
                while len(self._runs) > self.cache_size:
                    self._runs.popitem(last=False)
        settings = run.settings
        iou_threshold = settings.iou_threshold if iou_threshold is None else float(iou_threshold)
        max_detections = settings.max_detections if max_detections is None else int(max_detections)
        if (iou_threshold, max_detections) == (settings.iou_threshold, settings.max_detections):
            detections = run.detections
        else:
            id2label = detector.model.config.id2label
            detections = rerun_last_stage(run.candidates, settings, iou_threshold, max_detections, id2label)
        kept = select_detections(detections, threshold, classes)
        return DemoResult(
            model=model,
            image_name=image_name,
            image_size=image.size,
            threshold=threshold,
            classes=list(classes),
            detections=kept,
            annotated=annotate_for_display(image, kept),
            run=run,
            cached=cached,
            iou_threshold=iou_threshold,
            max_detections=max_detections,
        )

    def detect_frame(
        self, image: Image.Image, model: str, threshold: float = 0.5, classes: Sequence[str] = ()
    ) -> tuple[list[Detection], float]:
        """The detections kept in one picture (a webcam frame: never cached) and the model's time in seconds."""
        if not 0.0 <= threshold <= 1.0:
            raise FasterRCNNHubError(f"The score threshold must lie in [0, 1], got {threshold}.")
        detector = self.catalogue.detector(model)
        start = time.perf_counter()
        detections, _ = self._executor.submit(self._model_call, detector, image).result()
        return select_detections(detections, threshold, classes), time.perf_counter() - start

    @staticmethod
    def _detect(detector: Any, image: Image.Image) -> tuple[list[Detection], Candidates]:
        recorder = recorder_for(detector)
        recorder.start()
        try:
            detections = detector(image, threshold=0.0)
            return detections, recorder.take(image.size)
        finally:
            _release_free_memory()
