"""The demo's web page and API, built with Gradio (the optional `[demo]` extra)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import FasterRCNNHubError, MissingDependencyError
from .analysis import TABLE_HEADERS, DemoResult, DetectionRunner, annotate_for_display
from .gpu import on_gpu_when_available
from .models import PHOTO_KIND, SHAPES_KIND, ModelCatalogue
from .online_default import default_photo_models
from .video import MAX_VIDEO_SECONDS, annotate_video

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
# Each kind of model gets the examples it can make sense of: photos for COCO models, generated shapes for the
# synthetic-shapes model (a shapes model calls an astronaut's face a circle).
EXAMPLE_FOLDERS = {PHOTO_KIND: EXAMPLES_DIR / "photos", SHAPES_KIND: EXAMPLES_DIR / "shapes"}
EXAMPLE_SUFFIXES = {".jpg", ".png"}
API_NAME = "detect"
MAX_UPLOAD_SIZE = "50mb"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
NO_IMAGE_MESSAGE = "Upload an image or click one of the examples."
# A camera stream holds a model worker: it is cut after this long, and sends a frame this often at most.
WEBCAM_TIME_LIMIT_S = 60
WEBCAM_FRAME_INTERVAL_S = 0.25
WEBCAM_MESSAGE = (
    "Allow the camera, then press Record: each frame goes through the model picked on the Image tab (streams stop "
    f"after {WEBCAM_TIME_LIMIT_S} s)."
)
NO_VIDEO_MESSAGE = (
    f"Upload a clip of up to {MAX_VIDEO_SECONDS:.0f} s: every frame goes through the model picked on the Image tab, "
    "with its score threshold and classes."
)
ERROR_PREFIX = "**Could not detect objects:**"
LOGGER = logging.getLogger(__name__)

DESCRIPTION = """\
# Faster R-CNN object detection

mmdetection's Faster R-CNN running on PyTorch and Hugging Face transformers alone (faster-rcnn-hub): a converted
mmdetection model gives the detections mmdetection gives, without mmcv.
Upload an image (or click an example), then move the threshold or pick classes: the table, the picture and the
JSON follow. Boxes are `x1, y1, x2, y2` in pixels of the uploaded image.
"""


def example_paths(kind: str) -> list[Path]:
    """The bundled example images for models of `kind`, sorted by name."""
    folder = EXAMPLE_FOLDERS.get(kind)
    if folder is None or not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in EXAMPLE_SUFFIXES)


def models_overview(catalogue: ModelCatalogue) -> str:
    """Markdown saying which models detect objects in real photos and which is the synthetic-shapes model."""
    photo, shapes = catalogue.names_of_kind(PHOTO_KIND), catalogue.names_of_kind(SHAPES_KIND)
    lines = []
    if photo:
        lines.append(f"**Real-photo models:** {', '.join(photo)}.")
    else:
        lines.append(
            "**No real-photo model on this server** (none was given, and mmdetection's COCO model could not be "
            "fetched: the server is offline): only synthetic shapes are detected. "
            "`faster-rcnn-hub demo --model FOLDER_OR_HUB_ID` adds a COCO model."
        )
    if shapes:
        lines.append(
            f"**Synthetic-shapes model:** {', '.join(shapes)}; it knows circles, squares, triangles, stars and "
            "crosses only, so try it on its own examples."
        )
    return "  \n".join(lines)


def model_details(catalogue: ModelCatalogue, name: str) -> str:
    """Markdown: the model's one-line description."""
    return f"**{name}**: {catalogue.infos[name].description}"


def model_card(catalogue: ModelCatalogue, name: str) -> str:
    return catalogue.infos[name].card or "This model comes without a model card."


def import_gradio() -> Any:
    """The `gradio` module, or a `MissingDependencyError` saying how to install it."""
    try:
        import gradio
    except ImportError as error:
        raise MissingDependencyError(
            "The demo needs gradio, which is not installed: pip install 'faster-rcnn-hub[demo]' "
            "(or pip install -e '.[demo]' in a checkout)."
        ) from error
    return gradio


class ReportFolder:
    """Where the JSON downloads are written before Gradio copies them into its own cache (which its
    `delete_cache` setting empties); files older than `max_age_seconds` are removed as new ones arrive."""

    def __init__(self, max_age_seconds: float = 600.0) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="faster-rcnn-hub-demo-")
        self.max_age_seconds = max_age_seconds

    def write(self, result: DemoResult) -> str:
        content = json.dumps(result.report(), indent=2).encode("utf-8")
        # One sub-folder per content keeps the user's file name and lets equal reports share one file.
        folder = Path(self._folder.name) / hashlib.sha256(content).hexdigest()[:24]
        self._remove_old(keep=folder)
        folder.mkdir(exist_ok=True)
        path = folder / f"{Path(result.image_name).stem or 'image'}_detections.json"
        path.write_bytes(content)
        return str(path)

    def new_folder(self) -> Path:
        """A fresh folder for one request's files (an annotated video and its report)."""
        folder = Path(tempfile.mkdtemp(dir=self._folder.name))
        self._remove_old(keep=folder)
        return folder

    def _remove_old(self, keep: Path) -> None:
        deadline = time.time() - self.max_age_seconds
        for entry in Path(self._folder.name).iterdir():
            try:
                expired = entry != keep and entry.stat().st_mtime < deadline
            except FileNotFoundError:  # removed by a concurrent request
                continue
            if expired:
                shutil.rmtree(entry, ignore_errors=True)


def create_demo(
    models: Sequence[str] = (),
    device: str | torch.device | None = None,
    concurrency_limit: int = 1,
    max_queue_size: int = 64,
) -> Any:
    """The demo page (a `gradio.Blocks`), serving `models` and the bundled synthetic-shapes model.

    Args:
        models: Converted model folders or Hub ids to offer before the shapes model; the first is selected. None
            given: those of `online_default.default_photo_models` (`$FASTER_RCNN_HUB_MODELS`, else mmdetection's
            COCO model, converted from the zoo on first start when online).
        device: Where the models run (default: CUDA when available).
        concurrency_limit: How many detection requests run at once; the others wait in the queue.
        max_queue_size: How many requests may wait; more are turned away with a "queue full" message.

    Raises:
        MissingDependencyError: gradio is not installed.
        FasterRCNNHubError: No model is available, or the first model cannot be loaded.
    """
    gr = import_gradio()
    if concurrency_limit < 1 or max_queue_size < 1:
        raise FasterRCNNHubError(
            f"concurrency_limit and max_queue_size must be at least 1, got {concurrency_limit} and {max_queue_size}."
        )
    if not models:
        models = default_photo_models()
    catalogue = ModelCatalogue.from_arguments(models, device=device)
    handlers = _PageHandlers(gr, catalogue, DetectionRunner(catalogue, workers=concurrency_limit))
    initial_model = catalogue.names[0]
    # Load the first model now: a broken model stops the start with its message instead of failing the first
    # request, and the first visitor does not wait for the load.
    catalogue.class_names(initial_model)
    with gr.Blocks(title="Faster R-CNN object detection", delete_cache=(600, 3600)) as demo:
        gr.Markdown(DESCRIPTION)
        gr.Markdown(models_overview(catalogue), elem_id="models-overview")
        with gr.Tab("Image", elem_id="image-tab"):
            page = _build_page(gr, catalogue, initial_model)
        with gr.Tab("Video", elem_id="video-tab"):
            video_page = _build_video_page(gr)
        with gr.Tab("Webcam", elem_id="webcam-tab"):
            webcam_page = _build_webcam_page(gr)
        _connect_events(page, handlers)
        _connect_video_events(gr, page, video_page, handlers)
        _connect_webcam_events(page, webcam_page, handlers)
    demo.queue(max_size=max_queue_size, default_concurrency_limit=concurrency_limit, api_open=False)
    return demo


class _PageHandlers:
    """What the page's events call: detection, clearing the outputs, and switching models."""

    def __init__(self, gr: Any, catalogue: ModelCatalogue, runner: DetectionRunner) -> None:
        self.gr = gr
        self.catalogue = catalogue
        self.runner = runner
        self.reports = ReportFolder()

    def detect(
        self,
        image: dict | None,
        model: str,
        threshold: float,
        classes: list[str] | None,
        iou_threshold: float | None = None,
        max_detections: int | None = None,
    ):
        """Detect objects in an image (the API: errors are raised to the caller).

        Args:
            image: The image file.
            model: Which model to run (one of the demo's model names).
            threshold: Keep detections scoring above this (0 to 1).
            classes: Keep only these class names (empty: all classes).
            iou_threshold: The per-class NMS IoU threshold (default: the model's own, 0.5 for mmdetection's).
            max_detections: Keep at most this many detections, the best first (default: the model's own cap).

        Returns:
            The annotated image, the detections table (label, score, x1, y1, x2, y2), the JSON report, a summary.
        """
        try:
            return self._detect(image, model, threshold, classes, iou_threshold, max_detections)
        except FasterRCNNHubError as error:
            raise self.gr.Error(str(error), print_exception=False) from error

    def detect_on_page(
        self,
        image: dict | None,
        model: str,
        threshold: float,
        classes: list[str] | None,
        iou_threshold: float | None = None,
        max_detections: int | None = None,
    ):
        """As `detect`, but an error becomes the summary, where it stays until the next input (a toast would
        vanish after a few seconds and leave the page saying nothing about what went wrong)."""
        try:
            return self._detect(image, model, threshold, classes, iou_threshold, max_detections)
        except FasterRCNNHubError as error:
            return None, [], None, f"{ERROR_PREFIX} {error}"
        except Exception:  # noqa: BLE001 - the visitor gets a sentence, the log gets the traceback
            LOGGER.exception("detection failed")
            return None, [], None, f"{ERROR_PREFIX} the server failed unexpectedly; please try again."

    def _detect(
        self,
        image: dict | None,
        model: str,
        threshold: float,
        classes: list[str] | None,
        iou_threshold: float | None,
        max_detections: int | None,
    ):
        if not image:
            return None, [], None, NO_IMAGE_MESSAGE
        # preprocess=False hands over the upload as Gradio's file record: our own reader then reports an
        # unreadable file in plain words, where Gradio's image preprocessing would fail with a bare "Error".
        path = image["path"] if isinstance(image, dict) else image
        name = (image.get("orig_name") if isinstance(image, dict) else None) or Path(path).name
        result = self.runner(
            path, model, float(threshold), list(classes or []), image_name=name,
            iou_threshold=None if iou_threshold is None else float(iou_threshold),
            max_detections=None if max_detections is None else int(max_detections),
        )  # fmt: skip
        return result.annotated, result.table_rows(), self.reports.write(result), result.summary()

    def annotate_video(
        self, video: dict | str | None, model: str, threshold: float, classes: list[str] | None, progress: Any
    ):
        """The annotated clip, its JSON-lines report and a summary; an error becomes the summary."""
        if not video:
            return None, None, NO_VIDEO_MESSAGE
        # preprocess=False: Gradio's video record ({"video": file record, ...}), read by OpenCV, not converted.
        record = video.get("video", video) if isinstance(video, dict) else video
        path = record["path"] if isinstance(record, dict) else record
        name = (record.get("orig_name") if isinstance(record, dict) else None) or Path(path).name
        try:
            detector = self.catalogue.detector(model)
            # One GPU call for the whole clip on ZeroGPU rather than one per frame.
            result = on_gpu_when_available(annotate_video)(
                path, detector, self.reports.new_folder(), threshold=float(threshold), classes=list(classes or []),
                video_name=name, progress=lambda done, total: progress((done, total), desc="frames", unit="frames"),
            )  # fmt: skip
        except FasterRCNNHubError as error:
            return None, None, f"{ERROR_PREFIX} {error}"
        return str(result.video_path), str(result.report_path), result.summary()

    def webcam_frame(
        self, frame: Any, model: str, threshold: float, classes: list[str] | None, last_arrival: float | None
    ):
        """One camera frame annotated, the frame rate (frames answered per second in this stream), and the
        arrival time of this frame for the next call."""
        arrival = time.monotonic()
        if frame is None:
            return None, WEBCAM_MESSAGE, last_arrival
        try:
            kept, seconds = self.runner.detect_frame(frame, model, float(threshold), list(classes or []))
        except FasterRCNNHubError as error:
            return None, f"{ERROR_PREFIX} {error}", None
        rate = f"**{1 / (arrival - last_arrival):.1f} frames/s**" if last_arrival else "**first frame**"
        counts = ", ".join(f"{label} {number}" for label, number in Counter(d.label for d in kept).most_common())
        noun = "detection" if len(kept) == 1 else "detections"
        text = f"{rate} · model took {seconds * 1000:.0f} ms · {len(kept)} {noun}"
        text += f": {counts}" if counts else ""
        return annotate_for_display(frame, kept), text, arrival

    @staticmethod
    def clear_outputs():
        # A new image first empties the results, so that a failure never leaves the last image's detections
        # on show as if they belonged to the new one.
        return None, [], None, "Detecting objects…"

    def choose_model(self, model: str):
        """The page for `model`: its classes, description, card, and the examples of its kind."""
        kind = self.catalogue.infos[model].kind
        shown = [self.gr.update(visible=example_kind == kind) for example_kind in EXAMPLE_FOLDERS]
        try:
            classes = self.gr.update(choices=self.catalogue.class_names(model), value=[])
            settings = self.catalogue.last_stage_settings(model)
        except FasterRCNNHubError as error:
            classes = self.gr.update(choices=[], value=[])
            details = f"{ERROR_PREFIX} {error}"
            iou, cap = self.gr.update(), self.gr.update()
        else:
            details = model_details(self.catalogue, model)
            iou = self.gr.update(value=settings.iou_threshold, interactive=settings.rerunnable)
            cap = self.gr.update(
                value=settings.max_detections, maximum=settings.max_detections, interactive=settings.rerunnable
            )
        return [classes, details, model_card(self.catalogue, model), iou, cap, *shown]


@dataclass
class _Page:
    """The page's components that events read or write."""

    image: Any
    model: Any
    threshold: Any
    classes: Any
    iou_threshold: Any
    max_detections: Any
    detect_button: Any
    api_button: Any
    details: Any
    card: Any
    example_groups: list[Any]
    examples: list[Any]
    annotated: Any
    summary: Any
    table: Any
    report: Any


def _build_page(gr: Any, catalogue: ModelCatalogue, initial_model: str) -> _Page:
    initial_kind = catalogue.infos[initial_model].kind
    with gr.Row(equal_height=False):
        with gr.Column():
            image_input = gr.Image(
                label="Image", type="filepath", sources=["upload", "clipboard"], elem_id="input-image"
            )
            model_input = gr.Dropdown(
                catalogue.names, value=initial_model, label="Model", elem_id="model",
                info="real-photo models detect COCO objects; the shapes model knows synthetic shapes only",
            )  # fmt: skip
            details_output = gr.Markdown(model_details(catalogue, initial_model), elem_id="model-details")
            with gr.Accordion("Model card", open=False):
                card_output = gr.Markdown(model_card(catalogue, initial_model), elem_id="model-card")
            threshold_input = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Score threshold", elem_id="threshold")
            classes_input = gr.Dropdown(
                catalogue.class_names(initial_model), value=[], multiselect=True, label="Classes",
                elem_id="classes", info="show only these (empty: all classes)",
            )  # fmt: skip
            settings = catalogue.last_stage_settings(initial_model)
            adjustable = settings.rerunnable
            with gr.Row():
                iou_input = gr.Slider(
                    0.05, 1.0, value=settings.iou_threshold, step=0.05, label="NMS IoU threshold",
                    info="lower: fewer overlapping boxes of one class", elem_id="nms-iou", interactive=adjustable,
                )  # fmt: skip
                max_input = gr.Slider(
                    1, settings.max_detections, value=settings.max_detections, step=1, label="Max detections",
                    info="the best first", elem_id="max-detections", interactive=adjustable,
                )  # fmt: skip
            detect_button = gr.Button("Detect objects", variant="primary", elem_id="detect-button")
            # The API's endpoint: the same detection, but errors reach the caller as errors (the page's button
            # shows them in the summary instead). Never shown; API clients call it by name.
            api_button = gr.Button("Detect (API)", visible=False, elem_id="api-button")
            example_groups, examples = [], []
            for kind in EXAMPLE_FOLDERS:
                with gr.Column(visible=kind == initial_kind, elem_id=f"{kind}-examples") as group:
                    paths = example_paths(kind)
                    if paths:
                        label = "Examples: photos" if kind == PHOTO_KIND else "Examples: synthetic shapes"
                        examples.append(
                            gr.Examples([[str(path)] for path in paths], inputs=[image_input], label=label)
                        )
                example_groups.append(group)
        with gr.Column():
            # PNG: lossless, so thin boxes and small labels stay sharp. No label badge: it would cover the labels
            # of boxes in the picture's top left corner.
            annotated_output = gr.Image(
                label="Annotated image", show_label=False, type="pil", format="png", interactive=False,
                elem_id="annotated-image",
            )  # fmt: skip
            summary_output = gr.Markdown(NO_IMAGE_MESSAGE, label="Summary", elem_id="summary")
            table_output = gr.Dataframe(
                headers=TABLE_HEADERS, datatype=["str"] + ["number"] * 5, interactive=False,
                label="Detections", elem_id="detections-table",
            )  # fmt: skip
            report_output = gr.File(label="JSON report", interactive=False, elem_id="json-report")
    return _Page(
        image=image_input, model=model_input, threshold=threshold_input, classes=classes_input,
        iou_threshold=iou_input, max_detections=max_input, detect_button=detect_button, api_button=api_button,
        details=details_output, card=card_output,
        example_groups=example_groups, examples=examples, annotated=annotated_output, summary=summary_output,
        table=table_output, report=report_output,
    )  # fmt: skip


def _connect_events(page: _Page, handlers: _PageHandlers) -> None:
    inputs = [page.image, page.model, page.threshold, page.classes, page.iou_threshold, page.max_detections]
    outputs = [page.annotated, page.table, page.report, page.summary]
    # Every event that runs a model shares one concurrency group, so the queue's limit holds for all of them.
    common = {"inputs": inputs, "outputs": outputs, "preprocess": False, "concurrency_id": "model"}
    page.api_button.click(handlers.detect, **common, api_name=API_NAME)
    run = {"fn": handlers.detect_on_page, **common}
    page.detect_button.click(**run, api_visibility="private")
    # upload and clear rather than change: Gradio fires change twice when an upload replaces an image.
    clear = {"fn": handlers.clear_outputs, "outputs": outputs, "queue": False, "show_progress": "hidden"}
    page.image.upload(**clear, api_visibility="private").then(**run, api_visibility="private")
    page.image.clear(**run, api_visibility="private")
    for examples in page.examples:
        examples.load_input_event.then(**clear, api_visibility="private").then(**run, api_visibility="private")
    page.threshold.change(**run, api_visibility="private", trigger_mode="always_last")
    page.classes.input(**run, api_visibility="private")
    # Only the model's last stage runs again (see last_stage.py): as instant as the threshold.
    page.iou_threshold.change(**run, api_visibility="private", trigger_mode="always_last")
    page.max_detections.change(**run, api_visibility="private", trigger_mode="always_last")
    page.model.input(
        handlers.choose_model, page.model,
        [page.classes, page.details, page.card, page.iou_threshold, page.max_detections, *page.example_groups],
        api_visibility="private", concurrency_id="model",
    ).success(**run, api_visibility="private")  # fmt: skip


@dataclass
class _VideoPage:
    video: Any
    button: Any
    annotated: Any
    report: Any
    summary: Any


def _build_video_page(gr: Any) -> _VideoPage:
    with gr.Row(equal_height=False):
        with gr.Column():
            video_input = gr.Video(label="Video clip", sources=["upload"], elem_id="input-video")
            button = gr.Button("Detect objects in every frame", variant="primary", elem_id="video-button")
        with gr.Column():
            annotated = gr.Video(label="Annotated clip", show_label=False, interactive=False, elem_id="annotated-video")
            summary = gr.Markdown(NO_VIDEO_MESSAGE, elem_id="video-summary")
            report = gr.File(label="JSON-lines report", interactive=False, elem_id="video-report")
    return _VideoPage(video=video_input, button=button, annotated=annotated, report=report, summary=summary)


def _connect_video_events(gr: Any, page: _Page, video_page: _VideoPage, handlers: _PageHandlers) -> None:
    # Gradio passes a progress tracker to a parameter whose default is gr.Progress(); it draws the bar.
    def annotate(video, model, threshold, classes, progress=gr.Progress()):  # noqa: B008
        return handlers.annotate_video(video, model, threshold, classes, progress)

    outputs = [video_page.annotated, video_page.report, video_page.summary]
    run = {
        "fn": annotate, "inputs": [video_page.video, page.model, page.threshold, page.classes], "outputs": outputs,
        "preprocess": False, "concurrency_id": "model", "api_visibility": "private",
    }  # fmt: skip
    video_page.button.click(**run)
    video_page.video.upload(**run)


@dataclass
class _WebcamPage:
    camera: Any
    annotated: Any
    rate: Any
    last_arrival: Any


def _build_webcam_page(gr: Any) -> _WebcamPage:
    with gr.Row(equal_height=False):
        camera = gr.Image(label="Camera", sources=["webcam"], streaming=True, type="pil", elem_id="webcam")
        with gr.Column():
            annotated = gr.Image(show_label=False, type="pil", format="jpeg", interactive=False,
                                 elem_id="webcam-annotated")  # fmt: skip
            rate = gr.Markdown(WEBCAM_MESSAGE, elem_id="webcam-rate")
    return _WebcamPage(camera=camera, annotated=annotated, rate=rate, last_arrival=gr.State(None))


def _connect_webcam_events(page: _Page, webcam_page: _WebcamPage, handlers: _PageHandlers) -> None:
    webcam_page.camera.stream(
        handlers.webcam_frame,
        [webcam_page.camera, page.model, page.threshold, page.classes, webcam_page.last_arrival],
        [webcam_page.annotated, webcam_page.rate, webcam_page.last_arrival],
        stream_every=WEBCAM_FRAME_INTERVAL_S, time_limit=WEBCAM_TIME_LIMIT_S,
        # A stream holds its queue slot for its whole length: in the "model" group it would stall every image
        # request for up to a minute (measured: an API request waited 51 s). In a group of its own, one camera
        # streams at a time, and its frames share the model threads with image requests turn by turn.
        concurrency_id="webcam", concurrency_limit=1, api_visibility="private", show_progress="hidden",
    )  # fmt: skip


def launch_demo(demo: Any, host: str | None = None, port: int | None = None, **launch_options: Any) -> None:
    """Serve `demo` (blocks until interrupted unless `prevent_thread_lock=True` is passed).

    Args:
        demo: What `create_demo` returned.
        host: Address to listen on; `None` lets Gradio decide (`GRADIO_SERVER_NAME`, else 127.0.0.1).
        port: Port to listen on; `None` lets Gradio decide (`GRADIO_SERVER_PORT`, else the first free from 7860).
        launch_options: Passed on to `gradio.Blocks.launch`.
    """
    gr = import_gradio()
    # System fonts: Gradio's default theme fetches Google Fonts, which an offline machine cannot reach.
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )
    options = {"max_file_size": MAX_UPLOAD_SIZE, "ssr_mode": False, "theme": theme, **launch_options}
    demo.launch(server_name=host, server_port=port, **options)


__all__ = ["API_NAME", "DEFAULT_HOST", "DEFAULT_PORT", "create_demo", "import_gradio", "launch_demo"]
