"""The demo's web page and API, built with Gradio (the optional `[demo]` extra)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import FasterRCNNHubError, MissingDependencyError
from .analysis import TABLE_HEADERS, DemoResult, DetectionRunner
from .models import ModelCatalogue

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
API_NAME = "detect"
MAX_UPLOAD_SIZE = "50mb"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
NO_IMAGE_MESSAGE = "Upload an image or click one of the examples."

DESCRIPTION = """\
# Faster R-CNN object detection

mmdetection's Faster R-CNN running on PyTorch and Hugging Face transformers alone (faster-rcnn-hub): the detections
mmdetection gives, without mmcv.
Upload an image (or click an example), then move the threshold or pick classes: the table, the picture and the
JSON follow. Boxes are `x1, y1, x2, y2` in pixels of the uploaded image.
"""


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
    """The demo page (a `gradio.Blocks`), serving the bundled default model and `models`.

    Args:
        models: Converted model folders or Hub ids to offer besides the default model; the first is selected.
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
    catalogue = ModelCatalogue.from_arguments(models, device=device)
    handlers = _PageHandlers(gr, catalogue, DetectionRunner(catalogue, workers=concurrency_limit))
    initial_model = models[0] if models else catalogue.names[0]
    # Load the first model now: a broken model stops the start with its message instead of failing the first
    # request, and the first visitor does not wait for the load.
    initial_classes = catalogue.class_names(initial_model)
    with gr.Blocks(title="Faster R-CNN object detection", delete_cache=(600, 3600)) as demo:
        gr.Markdown(DESCRIPTION)
        page = _build_page(gr, catalogue.names, initial_model, initial_classes)
        _connect_events(page, handlers)
    demo.queue(max_size=max_queue_size, default_concurrency_limit=concurrency_limit, api_open=False)
    return demo


class _PageHandlers:
    """What the page's events call: detection, clearing the outputs, and switching models."""

    def __init__(self, gr: Any, catalogue: ModelCatalogue, runner: DetectionRunner) -> None:
        self.gr = gr
        self.catalogue = catalogue
        self.runner = runner
        self.reports = ReportFolder()

    def detect(self, image: dict | None, model: str, threshold: float, classes: list[str] | None):
        """Detect objects in an image.

        Args:
            image: The image file.
            model: Which model to run (one of the demo's model names).
            threshold: Keep detections scoring above this (0 to 1).
            classes: Keep only these class names (empty: all classes).

        Returns:
            The annotated image, the detections table (label, score, x1, y1, x2, y2), the JSON report, a summary.
        """
        if not image:
            return None, [], None, NO_IMAGE_MESSAGE
        # preprocess=False hands over the upload as Gradio's file record: our own reader then reports an
        # unreadable file in plain words, where Gradio's image preprocessing would fail with a bare "Error".
        path = image["path"] if isinstance(image, dict) else image
        name = (image.get("orig_name") if isinstance(image, dict) else None) or Path(path).name
        try:
            result = self.runner(path, model, float(threshold), list(classes or []), image_name=name)
        except FasterRCNNHubError as error:
            raise self.gr.Error(str(error), print_exception=False) from error
        return result.annotated, result.table_rows(), self.reports.write(result), result.summary()

    @staticmethod
    def clear_outputs():
        # A new image first empties the results, so that a failure never leaves the last image's detections
        # on show as if they belonged to the new one.
        return None, [], None, "Detecting objects…"

    def choose_model(self, model: str):
        try:
            return self.gr.update(choices=self.catalogue.class_names(model), value=[])
        except FasterRCNNHubError as error:
            raise self.gr.Error(str(error), print_exception=False) from error


@dataclass
class _Page:
    """The page's components that events read or write."""

    image: Any
    model: Any
    threshold: Any
    classes: Any
    detect_button: Any
    examples: Any
    annotated: Any
    summary: Any
    table: Any
    report: Any


def _build_page(gr: Any, model_names: list[str], initial_model: str, initial_classes: list[str]) -> _Page:
    with gr.Row(equal_height=False):
        with gr.Column():
            image_input = gr.Image(
                label="Image", type="filepath", sources=["upload", "clipboard"], elem_id="input-image"
            )
            model_input = gr.Dropdown(
                model_names, value=initial_model, label="Model", elem_id="model",
                info="the default model and those given with --model",
            )  # fmt: skip
            threshold_input = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Score threshold", elem_id="threshold")
            classes_input = gr.Dropdown(
                initial_classes, value=[], multiselect=True, label="Classes", elem_id="classes",
                info="show only these (empty: all classes)",
            )  # fmt: skip
            detect_button = gr.Button("Detect objects", variant="primary", elem_id="detect-button")
            example_paths = sorted(EXAMPLES_DIR.glob("*.jpg"))
            examples = None
            if example_paths:
                examples = gr.Examples(
                    [[str(path)] for path in example_paths], inputs=[image_input], label="Examples",
                    elem_id="examples",
                )  # fmt: skip
        with gr.Column():
            # PNG: lossless, so thin boxes and small labels stay sharp.
            annotated_output = gr.Image(
                label="Annotated image", type="pil", format="png", interactive=False, elem_id="annotated-image"
            )
            summary_output = gr.Markdown(NO_IMAGE_MESSAGE, label="Summary", elem_id="summary")
            table_output = gr.Dataframe(
                headers=TABLE_HEADERS, datatype=["str"] + ["number"] * 5, interactive=False,
                label="Detections", elem_id="detections-table",
            )  # fmt: skip
            report_output = gr.File(label="JSON report", interactive=False, elem_id="json-report")
    return _Page(
        image=image_input, model=model_input, threshold=threshold_input, classes=classes_input,
        detect_button=detect_button, examples=examples, annotated=annotated_output, summary=summary_output,
        table=table_output, report=report_output,
    )  # fmt: skip


def _connect_events(page: _Page, handlers: _PageHandlers) -> None:
    inputs = [page.image, page.model, page.threshold, page.classes]
    outputs = [page.annotated, page.table, page.report, page.summary]
    # Every event that runs a model shares one concurrency group, so the queue's limit holds for all of them.
    run = {"fn": handlers.detect, "inputs": inputs, "outputs": outputs, "preprocess": False, "concurrency_id": "model"}
    page.detect_button.click(**run, api_name=API_NAME)
    # upload and clear rather than change: Gradio fires change twice when an upload replaces an image.
    clear = {"fn": handlers.clear_outputs, "outputs": outputs, "queue": False, "show_progress": "hidden"}
    page.image.upload(**clear, api_visibility="private").then(**run, api_visibility="private")
    page.image.clear(**run, api_visibility="private")
    if page.examples is not None:
        page.examples.load_input_event.then(**clear, api_visibility="private").then(**run, api_visibility="private")
    page.threshold.change(**run, api_visibility="private", trigger_mode="always_last")
    page.classes.input(**run, api_visibility="private")
    page.model.input(
        handlers.choose_model, page.model, page.classes, api_visibility="private", concurrency_id="model"
    ).success(**run, api_visibility="private")


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
