"""Detections from an OpenVINO export (IR) with OpenVINO's CPU runtime, without PyTorch."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from .export_folder import OPENVINO_MODEL_FILE
from .exported_detector import ExportedDetector


def import_openvino() -> Any:
    """The `openvino` module, or a `MissingDependencyError` naming the extra that installs it."""
    try:
        import openvino
    except ImportError as error:
        raise MissingDependencyError(
            "OpenVINO exports need OpenVINO: pip install 'faster-rcnn-hub[export]' (or openvino)."
        ) from error
    return openvino


class OpenVinoDetector(ExportedDetector):
    """An OpenVINO export folder (`faster-rcnn-hub export ... --format openvino`) compiled for the CPU.

    Args:
        folder: The export folder.
        device: OpenVINO device name (default `"CPU"`).

    The model is compiled with `INFERENCE_PRECISION_HINT=f32`: on CPUs with bfloat16 units (AMX, AVX-512 BF16)
    OpenVINO would otherwise run it in bfloat16, which moves boxes by pixels.
    """

    format = "openvino"

    def __init__(self, folder: str | os.PathLike, device: str = "CPU") -> None:
        super().__init__(folder)
        openvino = import_openvino()
        self.compiled = openvino.Core().compile_model(
            str(self.folder.path / OPENVINO_MODEL_FILE), device, {"INFERENCE_PRECISION_HINT": "f32"}
        )
        self.outputs = [self.compiled.output(name) for name in self.output_names]

    def run_graph(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self.compiled(inputs)
        return [results[output] for output in self.outputs]


__all__ = ["OpenVinoDetector", "import_openvino"]
