"""The bundled default model: small, loads offline, finds the shapes of the example image, and is what
`detect` and `evaluate` use without --model."""

from __future__ import annotations

import json

from faster_rcnn_hub import FasterRCNNForObjectDetection
from faster_rcnn_hub.cli import main
from faster_rcnn_hub.default_model import default_model_dir, example_image_path
from faster_rcnn_hub.detection import Detector
from faster_rcnn_hub.data.synthetic import SHAPE_CLASSES, SyntheticSpec, generate_image, write_dataset
from faster_rcnn_hub.training.default_recipe import HELD_OUT_SEED, IMAGE_SIZE


def _iou(first, second):
    width = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    height = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    union = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
    return width * height / (union - width * height)


def test_default_model_is_small_and_self_describing():
    folder = default_model_dir()
    assert (folder / "model.safetensors").stat().st_size <= 25 * 1024 * 1024
    model = FasterRCNNForObjectDetection.from_pretrained(folder)
    assert [model.config.id2label[index] for index in range(model.config.num_classes)] == list(SHAPE_CLASSES)
    card = (folder / "README.md").read_text()
    assert "Training log" in card and "AP50" in card and "train-default" in card


def test_default_model_finds_the_shapes_of_the_example_image():
    # The example image is image 0 of the held-out set: its objects are known.
    truth = generate_image(HELD_OUT_SEED, 0, SyntheticSpec(image_size=(IMAGE_SIZE, IMAGE_SIZE)))
    detections = Detector(default_model_dir(), device="cpu")(example_image_path(), threshold=0.5)
    for box, label in zip(truth.boxes, truth.classes):
        best = max(detections, key=lambda detection: _iou(detection.box, box))
        assert best.label == SHAPE_CLASSES[label] and _iou(best.box, box) > 0.7
    # Every confident detection is one of the shapes.
    assert all(max(_iou(detection.box, box) for box in truth.boxes) > 0.5 for detection in detections)


def test_detect_and_evaluate_use_the_default_model_without_model(tmp_path, capsys):
    assert main(["detect", str(example_image_path()), "--output-dir", str(tmp_path), "--json",
                 str(tmp_path / "found.json")]) == 0  # fmt: skip
    report = json.loads((tmp_path / "found.json").read_text())
    assert report[str(example_image_path())]["detections"]
    assert (tmp_path / f"{example_image_path().stem}_detections.png").is_file()

    data = write_dataset(tmp_path / "held-out", 12, HELD_OUT_SEED + 1, SyntheticSpec(image_size=(IMAGE_SIZE, IMAGE_SIZE)))
    metrics_path = tmp_path / "metrics.json"
    assert main(["evaluate", "--annotations", str(data / "annotations.json"), "--images", str(data / "images"),
                 "--metrics-json", str(metrics_path)]) == 0  # fmt: skip
    metrics = json.loads(metrics_path.read_text())
    assert metrics["AP50"] > 0.9 and metrics["AP"] > 0.6 and metrics["VOC_mAP50"] > 0.9
