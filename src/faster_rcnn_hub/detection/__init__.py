"""Running a model: `Detector` (load a model folder once, detect objects in images and batches of images) and
drawing its detections."""

from .detector import NETWORK_DTYPES, Detection, Detector
from .drawing import class_color, draw_detections

__all__ = ["NETWORK_DTYPES", "Detection", "Detector", "class_color", "draw_detections"]
