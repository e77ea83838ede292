"""`faster_rcnn_hub.export`: a converted model (folder, Hub id or the bundled one) into an export folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import FasterRCNNHubError, ModelNotFoundError
from ..prediction.run import resolve_model
from ..runtime.export_folder import (
    CONFIG_FILE,
    EXPORT_METADATA_FILE,
    ONNX_MODEL_FILE,
    OPENVINO_MODEL_FILE,
    PREPROCESSOR_FILE,
)
from .onnx_export import (
    BATCH_OUTPUT_NAMES,
    DEFAULT_OPSET,
    INPUT_NAMES,
    OUTPUT_NAMES,
    check_batch,
    check_exportable,
    check_opset,
    export_onnx,
)
from .onnx_quantization import check_quantize, quantize_onnx
from .openvino_export import export_openvino
from .program_export import export_program

EXPORT_FORMATS = ("onnx", "openvino", "exported-program")
# `torch.export.save` of the program (runs with torch only: `torch.export.load(path).module()`).
PROGRAM_FILE = "model.pt2"


def export(
    model: str | os.PathLike | None,
    output: str | os.PathLike,
    format: str = "onnx",
    opset: int = DEFAULT_OPSET,
    batch: int | str = 1,
    quantize: str | None = None,
    calibration_images: str | os.PathLike | None = None,
) -> Path:
    """Export a converted model to a folder that `Detector(output, backend="onnxruntime"|"openvino")` and the
    torch-free `python -m faster_rcnn_hub.runtime` run.

    The folder holds `model.onnx` (one graph: normalized padded pixels, the resized size and the rescale factor
    of one image in, final detections in original-image pixels out; any height and width) or, for OpenVINO, the
    same graph as IR (`model.xml`, `model.bin`, float32 weights), or for `"exported-program"` the same function
    as a `torch.export` program (`model.pt2`, for PyTorch: `torch.export.load(path).module()`), and `config.json`,
    `preprocessor_config.json` and `export.json`. It is written beside `output` and moved into place only when
    complete; an existing `output` is never touched.

    Args:
        model: A converted model folder, a Hub id, or `None` for the bundled default model.
        output: The folder to create; it must not exist (an empty folder is accepted).
        format: `"onnx"`, `"openvino"` or `"exported-program"`.
        opset: ONNX opset, at least 16.
        batch: Images per run of the graph: 1 (inputs of one image: `(1, 3, H, W)`, `(2,)`, `(2,)`), a fixed count
            `N` or `"dynamic"` (any count): inputs `(N, 3, H, W)` pixels of images of ONE padded size, `(N, 2)`
            resized sizes and `(N, 2)` rescale factors, and a fourth output `batch_index` (the image of each
            detection). Images of different padded sizes run in separate calls (each image must see only its own
            zero padding, see `batching.py`); the runtime and `Detector.detect_batch` group them so.
        quantize: `"int8"` for an ONNX graph whose convolutions (backbone, FPN, RPN) are INT8 (QDQ, per-channel
            weights, static activation ranges); RoiAlign, the box head and the detection logic stay float32.
            `export.json` records it; the runtime runs it unchanged.
        calibration_images: With `quantize`: a folder of images like the ones the model will see (its training
            images, never its evaluation images); the first 32 by name calibrate the activation ranges, each
            prepared as the runtime prepares it.

    Returns:
        The export folder.
    """
    if format not in EXPORT_FORMATS:
        raise FasterRCNNHubError(f"--format must be one of {list(EXPORT_FORMATS)}, got {format!r}.")
    check_opset(opset)
    check_quantize(quantize, calibration_images, format)
    check_batch(batch)
    if batch != 1 and format == "exported-program":
        raise FasterRCNNHubError(
            f"--batch {batch} is for --format onnx or openvino: the exported-program takes one image per run "
            "(its NMS cannot be traced with a dynamic batch); use --batch 1."
        )
    if batch != 1 and quantize is not None:
        raise FasterRCNNHubError(
            f"--quantize int8 exports take one image per run so far (calibration runs one image at a time); "
            f"use --batch 1 instead of --batch {batch}."
        )
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise FasterRCNNHubError(f"Not overwriting {output}: it already exists; choose a new output folder.")
    source = resolve_model(model)

    from ..models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig
    from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
    from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection

    try:
        config = FasterRCNNConfig.from_pretrained(source)
    except OSError as error:
        raise ModelNotFoundError(f"Cannot load the model {source!r}: {error}") from error
    # Refuse before loading the weights.
    check_exportable(config)
    detector = FasterRCNNForObjectDetection.from_pretrained(source)
    processor = FasterRCNNImageProcessor.from_pretrained(source)

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        if format == "exported-program":
            export_program(detector, staging / PROGRAM_FILE, processor.pad_size_divisor if processor.do_pad else 1)
        else:
            export_onnx(detector, staging / ONNX_MODEL_FILE, opset, batch)
        quantization: dict = {}
        if quantize is not None:
            float_model = staging / f"float32-{ONNX_MODEL_FILE}"
            (staging / ONNX_MODEL_FILE).rename(float_model)
            quantization = quantize_onnx(
                float_model, staging / ONNX_MODEL_FILE, calibration_images, processor.to_dict()
            )
            float_model.unlink()
        if format == "openvino":
            export_openvino(staging / ONNX_MODEL_FILE, staging / OPENVINO_MODEL_FILE)
            (staging / ONNX_MODEL_FILE).unlink()
        detector.config.to_json_file(staging / CONFIG_FILE)
        processor.to_json_file(staging / PREPROCESSOR_FILE)
        metadata = {
            "format": format,
            "opset": opset,
            "batch": batch,
            "source": str(model) if model is not None else "bundled default model",
            "inputs": INPUT_NAMES,
            "outputs": OUTPUT_NAMES if batch == 1 else BATCH_OUTPUT_NAMES,
            "precision": "int8" if quantize is not None else "float32",
            **quantization,
        }
        (staging / EXPORT_METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        if output.exists():
            output.rmdir()  # empty, checked above
        staging.rename(output)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return output


__all__ = ["EXPORT_FORMATS", "PROGRAM_FILE", "export"]
