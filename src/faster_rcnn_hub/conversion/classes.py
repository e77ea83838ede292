"""Class names of the data sets mmdetection's Faster R-CNN model zoo was trained on."""

from __future__ import annotations

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

CITYSCAPES_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")

# mmdetection dataset type -> its class names (`METAINFO["classes"]`).
DATASET_CLASSES: dict[str, tuple[str, ...]] = {
    "CocoDataset": COCO_CLASSES,
    "VOCDataset": VOC_CLASSES,
    "CityscapesDataset": CITYSCAPES_CLASSES,
}

# Names accepted by `--classes` for a built-in list.
NAMED_CLASS_LISTS: dict[str, tuple[str, ...]] = {
    "coco": COCO_CLASSES,
    "voc": VOC_CLASSES,
    "cityscapes": CITYSCAPES_CLASSES,
}
