"""INT8 post-training static quantization of an exported ONNX graph, calibrated on a folder of images.

Only the convolutions (backbone, FPN, RPN) are quantized, QDQ with per-channel weights: they hold nearly all of
the compute, and ONNX Runtime runs them as integer kernels. RoiAlign, the box head's fully connected layers, the
box decoding and both NMS stay float32, so the detection logic is the float model's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import FasterRCNNHubError, MissingDependencyError
from ..runtime.preprocessing import Preprocessor

QUANTIZE_CHOICES = ("int8",)
CALIBRATION_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# Calibration keeps every activation of every run in memory until min/max are taken: a few dozen images give
# stable ranges (more only cost memory and time).
DEFAULT_CALIBRATION_IMAGES = 32
QUANTIZED_OP_TYPES = ["Conv"]


def calibration_images(folder: str | os.PathLike, limit: int = DEFAULT_CALIBRATION_IMAGES) -> list[Path]:
    """The first `limit` images (by name) of `folder`, or a `FasterRCNNHubError` saying what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FasterRCNNHubError(
            f"--calibration-images {folder} is not a folder: give a folder of images like the ones the model will "
            "see (for example its training images; never its evaluation images)."
        )
    images = sorted(path for path in folder.iterdir() if path.suffix.lower() in CALIBRATION_EXTENSIONS)
    if not images:
        raise FasterRCNNHubError(
            f"--calibration-images {folder} holds no images ({', '.join(CALIBRATION_EXTENSIONS)}): INT8 "
            "calibration measures the activations on real images; add some."
        )
    return images[:limit]


def check_quantize(quantize: str | None, calibration: str | os.PathLike | None, export_format: str) -> None:
    """Refuse a quantization request that cannot run, before anything is exported."""
    if quantize is None:
        if calibration is not None:
            raise FasterRCNNHubError("--calibration-images is only used with --quantize int8; add --quantize int8.")
        return
    if quantize not in QUANTIZE_CHOICES:
        raise FasterRCNNHubError(f"--quantize must be one of {list(QUANTIZE_CHOICES)}, got {quantize!r}.")
    if export_format != "onnx":
        raise FasterRCNNHubError(
            f"--quantize int8 is supported for --format onnx only, got --format {export_format}: the INT8 graph is "
            "quantized with ONNX Runtime (run it with --backend onnxruntime)."
        )
    if calibration is None:
        raise FasterRCNNHubError(
            "--quantize int8 needs --calibration-images DIR: a folder of images like the ones the model will see "
            "(for example its training images), to measure the activation ranges."
        )
    calibration_images(calibration)


class _CalibrationReader:
    """ONNX Runtime's `CalibrationDataReader`: each image prepared exactly as the runtime prepares it."""

    def __init__(self, images: list[Path], preprocessor: Preprocessor) -> None:
        self._images: Iterator[Path] = iter(images)
        self._preprocessor = preprocessor

    def get_next(self) -> dict[str, Any] | None:
        path = next(self._images, None)
        if path is None:
            return None
        prepared = self._preprocessor(path)
        return {
            "pixel_values": prepared.pixel_values,
            "image_size": prepared.image_size,
            "rescale_factor": prepared.rescale_factor,
        }


def quantize_onnx(
    float_model: Path,
    output: Path,
    calibration: str | os.PathLike,
    preprocessor_settings: dict[str, Any],
    limit: int = DEFAULT_CALIBRATION_IMAGES,
) -> dict[str, Any]:
    """Write the INT8 version of the ONNX graph `float_model` to `output`.

    Args:
        float_model: The float32 graph (`export_onnx`).
        output: The file to write.
        calibration: A folder of calibration images.
        preprocessor_settings: The image processor's saved settings (as `preprocessor_config.json`).
        limit: At most this many images (the first by name) calibrate.

    Returns:
        What export.json records about the quantization.
    """
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError as error:
        raise MissingDependencyError(
            "INT8 quantization needs ONNX Runtime: pip install 'faster-rcnn-hub[export]'."
        ) from error
    images = calibration_images(calibration, limit)
    reader = _CalibrationReader(images, Preprocessor(preprocessor_settings))
    # quantize_static advises ONNX Runtime's shape-inference pre-processing on the root logger; the graph's shapes
    # are dynamic by design and every convolution is quantized without it (tests/test_int8_export.py checks).
    advice = _DropMessages("pre-processing before quantization")
    logging.getLogger().addFilter(advice)
    try:
        quantize_static(
            str(float_model),
            str(output),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=QUANTIZED_OP_TYPES,
            per_channel=True,
            # Unsigned activations, signed weights: ONNX Runtime's recommended pairing on x86 CPUs (U8S8).
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        logging.getLogger().removeFilter(advice)
    return {
        "quantization": "int8",
        "quantized_op_types": QUANTIZED_OP_TYPES,
        "quant_format": "QDQ",
        "per_channel_weights": True,
        "calibration_images": len(images),
        "calibration_method": "MinMax",
    }


class _DropMessages(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


__all__ = [
    "DEFAULT_CALIBRATION_IMAGES",
    "QUANTIZE_CHOICES",
    "calibration_images",
    "check_quantize",
    "quantize_onnx",
]
