"""`faster-rcnn-hub predict`: detections for a whole folder of images, written as JSON lines, resumable, and
sharded across the processes of `accelerate launch`."""

from .images import IMAGE_EXTENSIONS, list_images
from .records import read_records
from .run import PredictionSummary, predict_to_jsonl

__all__ = ["IMAGE_EXTENSIONS", "PredictionSummary", "list_images", "predict_to_jsonl", "read_records"]
