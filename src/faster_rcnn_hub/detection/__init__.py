"""Running a model: `Detector` (load a model folder once, detect objects in images and batches of images) and
drawing its detections."""

from .detector import NETWORK_DTYPES, Detection, Detector
from .drawing import class_color, draw_detections
from .instance_mask import InstanceMask

__all__ = ["NETWORK_DTYPES", "Detection", "Detector", "InstanceMask", "class_color", "draw_detections"]
