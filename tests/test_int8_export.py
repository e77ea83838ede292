"""INT8 export: the bundled default model quantized on synthetic training images runs on the runtime unchanged,
its convolutions are quantized, its detections stay close to the float32 export's; bad requests are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

# Detections above this score are compared (the ones a user sees with the default threshold).
SHOWN_SCORE = 0.5


def _iou(box: list[float], others: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    intersection = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return intersection / (area + areas - intersection)


def test_int8_export_has_quantized_convolutions_and_says_so(default_model_exports):
    model = onnx.load(str(default_model_exports["int8"] / "model.onnx"))
    onnx.checker.check_model(model)
    assert all(node.domain in ("", "ai.onnx") for node in model.graph.node), "custom operators in the graph"
    produced_by = {output: node for node in model.graph.node for output in node.output}
    convolutions = [node for node in model.graph.node if node.op_type == "Conv"]
    # QDQ: each quantized convolution reads its activation and its weights through DequantizeLinear.
    quantized = [
        node for node in convolutions
        if all(name in produced_by and produced_by[name].op_type == "DequantizeLinear" for name in node.input[:2])
    ]  # fmt: skip
    assert len(quantized) == len(convolutions) > 10, (len(quantized), len(convolutions))
    # The box head's fully connected layers stay float32: neither their weights nor their inputs are dequantized.
    float_nodes = [node for node in model.graph.node if node.op_type in ("Gemm", "MatMul")]
    assert float_nodes, "the graph should hold the box head"
    dequantized = [
        node.name for node in float_nodes
        if any(name in produced_by and produced_by[name].op_type == "DequantizeLinear" for name in node.input)
    ]  # fmt: skip
    assert not dequantized, dequantized
    metadata = json.loads((default_model_exports["int8"] / "export.json").read_text())
    assert metadata["precision"] == "int8" and metadata["calibration_images"] == 8
    assert json.loads((default_model_exports["float32"] / "export.json").read_text())["precision"] == "float32"


def test_int8_detections_stay_close_to_float32(default_model_exports):
    from faster_rcnn_hub.runtime import OnnxDetector

    float_detector = OnnxDetector(default_model_exports["float32"])
    int8_detector = OnnxDetector(default_model_exports["int8"])
    reference_count = matched = int8_count = 0
    for image in default_model_exports["images"]:
        reference = float_detector.detect(image, threshold=SHOWN_SCORE)
        quantized = int8_detector.detect(image, threshold=SHOWN_SCORE)
        reference_count += len(reference)
        int8_count += len(quantized)
        for detection in reference:
            same_label = [other for other in quantized if other["label_id"] == detection["label_id"]]
            if same_label and _iou(detection["box"], np.asarray([d["box"] for d in same_label])).max() >= 0.9:
                matched += 1
    assert reference_count >= 10, f"the test needs detections to compare, got {reference_count}"
    assert matched >= 0.9 * reference_count, f"{matched} of {reference_count} float32 detections matched at IoU 0.9"
    assert abs(int8_count - reference_count) <= 0.1 * reference_count, (int8_count, reference_count)


def test_int8_requests_that_cannot_run_are_refused_and_nothing_is_written(tmp_path, capsys):
    from faster_rcnn_hub.cli.main import main

    output = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    refusals = {
        ("--quantize", "int8"): "--quantize int8 needs --calibration-images DIR",
        ("--quantize", "int8", "--calibration-images", str(empty)): f"{empty} holds no images",
        ("--quantize", "int8", "--calibration-images", str(tmp_path / "missing")): "is not a folder",
        ("--calibration-images", str(empty)): "only used with --quantize int8",
        ("--format", "openvino", "--quantize", "int8", "--calibration-images", str(empty)): "--format onnx only",
    }
    for arguments, message in refusals.items():
        assert main(["export", "default", str(output), *arguments]) == 2, arguments
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1, error
        assert not output.exists()


def test_predict_with_an_exported_backend_writes_the_runtime_detections(default_model_exports, tmp_path, capsys):
    from faster_rcnn_hub.cli.main import main
    from faster_rcnn_hub.prediction.records import read_records
    from faster_rcnn_hub.runtime import OnnxDetector

    images = tmp_path / "images"
    images.mkdir()
    for path in default_model_exports["images"][:3]:
        (images / path.name).write_bytes(path.read_bytes())
    output = tmp_path / "out.jsonl"
    for folder in ("float32", "int8"):
        arguments = ["predict", "--images", str(images), "--output", str(output), "--no-progress", "--num-workers", "0"]
        assert main([*arguments, "--backend", "onnxruntime", "--model", str(default_model_exports[folder])]) == 0
        detector = OnnxDetector(default_model_exports[folder])
        records = {Path(record["path"]).name: record for record in read_records(output)}
        assert sorted(records) == sorted(path.name for path in images.iterdir())
        for name, record in records.items():
            expected = detector.detect(images / name, threshold=0.5)
            assert [(d["label_id"], round(d["score"], 4)) for d in record["detections"]] == [
                (d["label_id"], round(d["score"], 4)) for d in expected
            ], name
        assert any(record["detections"] for record in records.values()), "the test needs detections to compare"
        output.unlink()
    capsys.readouterr()
    # An export folder needs --model; a converted (PyTorch) folder is not an export folder.
    assert main(["predict", "--images", str(images), "--output", str(output), "--backend", "onnxruntime"]) == 2
    assert "--backend onnxruntime runs an export folder" in capsys.readouterr().err
    from faster_rcnn_hub.default_model import default_model_dir

    assert main(["predict", "--images", str(images), "--output", str(output), "--backend", "openvino",
                 "--model", str(default_model_dir())]) == 2  # fmt: skip
    assert "not an exported model folder" in capsys.readouterr().err
    assert not output.exists()


def test_evaluate_with_an_exported_backend_scores_as_the_torch_model(default_model_exports, tmp_path, capsys):
    from faster_rcnn_hub.cli.main import main

    data = default_model_exports["held_out"]
    common = ["evaluate", "--annotations", str(data / "annotations.json"), "--images", str(data / "images")]
    metrics = {}
    for name, arguments in {
        "torch": ["--device", "cpu"],
        "float32": ["--backend", "onnxruntime", "--model", str(default_model_exports["float32"])],
        "int8": ["--backend", "onnxruntime", "--model", str(default_model_exports["int8"])],
    }.items():
        assert main([*common, *arguments, "--metrics-json", str(tmp_path / f"{name}.json")]) == 0, name
        metrics[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert metrics["torch"]["AP"] > 0.5, metrics["torch"]
    # The float32 graph gives the PyTorch model's detections, so its AP; INT8 stays within a point.
    assert abs(metrics["float32"]["AP"] - metrics["torch"]["AP"]) < 0.002, metrics
    assert abs(metrics["int8"]["AP"] - metrics["float32"]["AP"]) < 0.01, metrics
    capsys.readouterr()
    assert main([*common, "--backend", "onnxruntime"]) == 2
    assert "--backend onnxruntime runs an export folder" in capsys.readouterr().err


def test_the_export_command_offers_what_the_exporter_accepts():
    # The command repeats these so that building its parser imports no torch.
    from faster_rcnn_hub.cli import export_commands
    from faster_rcnn_hub.exporting import onnx_export, onnx_quantization
    from faster_rcnn_hub.exporting.export_model import EXPORT_FORMATS

    assert export_commands.QUANTIZE_CHOICES == onnx_quantization.QUANTIZE_CHOICES
    assert export_commands.EXPORT_FORMATS == EXPORT_FORMATS
    assert export_commands.DEFAULT_OPSET == onnx_export.DEFAULT_OPSET
