"""ONNX export: one file runs every image size in ONNX Runtime and gives the PyTorch model's detections by the
fixtures' rule; what cannot be exported is refused, naming the setting; nothing existing is overwritten."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from conftest import IMAGES
from parity import assert_matches, compare_detections

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

# Padded sizes 800x800, 800x1216 and 192x1344 (COCO scale); 608x608, 608x928 and 160x1024 (VOC scale).
SIZES_IMAGES = ["astronaut", "chelsea", "wide_pattern"]
CASES = ["tiny_r50_fpn_coco", "tiny_r50_caffe_fpn_voc"]


_torch_runs: dict = {}


def torch_detections(loaded_model, case: str, name: str):
    """The PyTorch model's detections of a fixture image (computed once: several formats compare with them)."""
    if (case, name) not in _torch_runs:
        model, processor = loaded_model(case)
        with torch.no_grad():
            outputs = model(**processor(images=[Image.open(IMAGES / f"{name}.png")]))
        count = int(outputs.num_detections[0])
        _torch_runs[case, name] = (
            outputs.pred_boxes[0, :count], outputs.scores[0, :count].tolist(), outputs.labels[0, :count].tolist()
        )
    return _torch_runs[case, name]


@pytest.mark.parametrize("case", CASES)
def test_one_onnx_file_gives_the_torch_detections_at_every_image_size(loaded_model, onnx_export, case):
    from faster_rcnn_hub.runtime import OnnxDetector

    detector = OnnxDetector(onnx_export(case))
    input_sizes = set()
    for name in SIZES_IMAGES:
        image = Image.open(IMAGES / f"{name}.png")
        prepared = detector.preprocessor(image)
        input_sizes.add(prepared.pixel_values.shape)
        boxes, scores, labels = detector.run(prepared)
        reference = torch_detections(loaded_model, case, name)
        assert len(reference[1]) > 0, f"{case}/{name}: the test needs detections to compare"
        assert_matches(compare_detections(*reference, boxes, scores.tolist(), labels.tolist()), f"{case}/{name} onnx")
    assert len(input_sizes) == len(SIZES_IMAGES), input_sizes


def test_openvino_export_gives_the_torch_detections_at_every_image_size(loaded_model, converted_model, tmp_path):
    pytest.importorskip("openvino")
    from faster_rcnn_hub import Detector, FasterRCNNHubError, export
    from faster_rcnn_hub.runtime import OpenVinoDetector, open_exported

    case = "tiny_r50_fpn_coco"
    folder = export(converted_model(case), tmp_path / "openvino", format="openvino")
    assert {"model.xml", "model.bin"} <= {path.name for path in folder.iterdir()}
    assert not (folder / "model.onnx").exists()
    detector = open_exported(folder)
    assert isinstance(detector, OpenVinoDetector)
    for name in SIZES_IMAGES:
        image = Image.open(IMAGES / f"{name}.png")
        boxes, scores, labels = detector.run(detector.preprocessor(image))
        reference = torch_detections(loaded_model, case, name)
        assert_matches(compare_detections(*reference, boxes, scores.tolist(), labels.tolist()), f"{name} openvino")
    with pytest.raises(FasterRCNNHubError, match="holds a 'openvino' export"):
        Detector(folder, backend="onnxruntime")


# chelsea (resized 800x1203) and coffee (800x1200) share the padded size 800x1216; astronaut pads to 800x800.
SAME_PADDED_SIZE = ["chelsea", "coffee"]


def assert_each_image_gets_its_torch_detections(loaded_model, case, names, results, what):
    for name, (boxes, scores, labels) in zip(names, results):
        reference = torch_detections(loaded_model, case, name)
        assert len(reference[1]) > 0, f"{name}: the test needs detections to compare"
        comparison = compare_detections(*reference, boxes, list(scores), list(labels))
        assert_matches(comparison, f"{name} {what}")


def test_a_dynamic_batch_export_runs_two_image_sizes_in_one_run_with_each_images_detections(
    loaded_model, converted_model, tmp_path
):
    import onnx

    from faster_rcnn_hub import Detector, export
    from faster_rcnn_hub.runtime import OnnxDetector

    case = "tiny_r50_fpn_coco"
    folder = export(converted_model(case), tmp_path / "dynamic", batch="dynamic")
    metadata = json.loads((folder / "export.json").read_text())
    assert metadata["batch"] == "dynamic" and metadata["outputs"][-1] == "batch_index"
    graph = onnx.load(str(folder / "model.onnx"))
    assert all(node.domain in ("", "ai.onnx") for node in graph.graph.node), "custom operators in the graph"
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param, "the batch must be dynamic"

    detector = OnnxDetector(folder)
    prepared = [detector.preprocessor(Image.open(IMAGES / f"{name}.png")) for name in SAME_PADDED_SIZE]
    assert prepared[0].pixel_values.shape == prepared[1].pixel_values.shape
    assert prepared[0].image_size.tolist() != prepared[1].image_size.tolist()
    runs = []
    run_graph = detector.run_graph
    detector.run_graph = lambda inputs: runs.append(inputs["pixel_values"].shape[0]) or run_graph(inputs)
    results = detector.run_batch(prepared)
    assert runs == [2], f"two images of one padded size must share one run, got runs of {runs}"
    assert_each_image_gets_its_torch_detections(loaded_model, case, SAME_PADDED_SIZE, results, "onnx batch")

    # A mixed batch: Detector groups the images by padded size, each group one run of the graph.
    names = ["chelsea", "astronaut", "coffee"]
    mixed = Detector(folder, backend="onnxruntime")
    runs.clear()
    run_graph = mixed.exported.run_graph
    mixed.exported.run_graph = lambda inputs: runs.append(inputs["pixel_values"].shape[0]) or run_graph(inputs)
    found = mixed.detect_batch([IMAGES / f"{name}.png" for name in names], threshold=0.0)
    assert sorted(runs) == [1, 2], f"one run per padded size, got runs of {runs}"
    results = [columns([detection.to_dict() for detection in detections]) for detections in found]
    assert_each_image_gets_its_torch_detections(loaded_model, case, names, results, "onnx mixed batch")


def test_a_fixed_batch_openvino_export_fills_its_last_run_and_keeps_each_images_detections(
    loaded_model, converted_model, tmp_path, capsys
):
    pytest.importorskip("openvino")
    from faster_rcnn_hub.cli.main import main
    from faster_rcnn_hub.runtime import OpenVinoDetector

    case = "tiny_r50_fpn_coco"
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(converted_model(case)), str(tmp_path / "bad"), "--batch", "many"])
    assert exit_info.value.code == 2
    assert "--batch: expected a positive integer or 'dynamic'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    arguments = ["export", str(converted_model(case)), str(tmp_path / "two"), "--format", "openvino", "--batch", "2"]
    assert main(arguments) == 0
    detector = OpenVinoDetector(tmp_path / "two")
    names = ["coffee", "chelsea", "coffee"]
    runs = []
    run_graph = detector.run_graph
    detector.run_graph = lambda inputs: runs.append(inputs["pixel_values"].shape[0]) or run_graph(inputs)
    results = detector.run_batch([detector.preprocessor(Image.open(IMAGES / f"{name}.png")) for name in names])
    assert runs == [2, 2], f"three images through a batch-2 graph take two full runs, got {runs}"
    assert_each_image_gets_its_torch_detections(loaded_model, case, names, results, "openvino batch 2")


def test_export_folder_holds_the_model_and_its_settings(onnx_export):
    import onnx

    folder = onnx_export("tiny_r50_fpn_coco")
    metadata = json.loads((folder / "export.json").read_text())
    assert metadata["format"] == "onnx" and metadata["batch"] == 1 and metadata["opset"] >= 16
    graph = onnx.load(str(folder / "model.onnx"))
    onnx.checker.check_model(graph)
    operators = {node.op_type for node in graph.graph.node}
    assert {"NonMaxSuppression", "RoiAlign", "TopK"} <= operators
    assert all(node.domain in ("", "ai.onnx") for node in graph.graph.node), "custom operators in the graph"
    half_pixel = [
        attribute.s.decode()
        for node in graph.graph.node
        if node.op_type == "RoiAlign"
        for attribute in node.attribute
        if attribute.name == "coordinate_transformation_mode"
    ]
    assert half_pixel and set(half_pixel) == {"half_pixel"}
    height, width = (dimension.dim_param for dimension in graph.graph.input[0].type.tensor_type.shape.dim[2:])
    assert height and width, "height and width must be dynamic"


def columns(detections: list[dict]) -> tuple[list, list, list]:
    return [d["box"] for d in detections], [d["score"] for d in detections], [d["label_id"] for d in detections]


def soft_nms_copy(folder, tmp_path):
    copy = tmp_path / "soft"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    config["rcnn_nms_type"] = "soft_nms"
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_soft_nms_and_bad_settings_are_refused_and_nothing_is_written(converted_model, tmp_path):
    from faster_rcnn_hub import FasterRCNNHubError, export

    folder = converted_model("tiny_r50_fpn_coco")
    with pytest.raises(FasterRCNNHubError, match="rcnn_nms_type='soft_nms'"):
        export(soft_nms_copy(folder, tmp_path), tmp_path / "out")
    with pytest.raises(FasterRCNNHubError, match="opset"):
        export(folder, tmp_path / "out", opset=13)
    with pytest.raises(FasterRCNNHubError, match="--batch must be a positive integer"):
        export(folder, tmp_path / "out", batch=0)
    with pytest.raises(FasterRCNNHubError, match="exported-program takes one image"):
        export(folder, tmp_path / "out", format="exported-program", batch="dynamic")
    with pytest.raises(FasterRCNNHubError, match="format"):
        export(folder, tmp_path / "out", format="tflite")
    assert not (tmp_path / "out").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["soft"]


def test_a_cascade_model_exports_and_gives_the_torch_detections_at_every_image_size(
    loaded_model, converted_model, tmp_path
):
    """Its three stages run in the graph: each refines the RoIs the next one pools, and the detections come from the
    last stage's deltas with the mean of the stages' logits (tests/test_cascade.py checks the stages themselves)."""
    from faster_rcnn_hub import export
    from faster_rcnn_hub.runtime import OnnxDetector

    case = "tiny_cascade_r50_fpn_coco"
    detector = OnnxDetector(export(converted_model(case), tmp_path / "cascade"))
    for name in SIZES_IMAGES:
        boxes, scores, labels = detector.run(detector.preprocessor(Image.open(IMAGES / f"{name}.png")))
        reference = torch_detections(loaded_model, case, name)
        assert len(reference[1]) > 0, f"{name}: the test needs detections to compare"
        assert_matches(compare_detections(*reference, boxes, scores.tolist(), labels.tolist()), f"{name} cascade")


def test_mask_models_are_refused_naming_mask_head_and_nothing_is_written(tmp_path, capsys):
    from faster_rcnn_hub import FasterRCNNConfig, FasterRCNNHubError, export
    from faster_rcnn_hub.cli import main

    FasterRCNNConfig(mask_head={}, num_classes=3).save_pretrained(tmp_path / "mask")
    with pytest.raises(FasterRCNNHubError, match=r"Mask R-CNN \(config.mask_head is set\)"):
        export(tmp_path / "mask", tmp_path / "out")
    assert main(["export", str(tmp_path / "mask"), str(tmp_path / "out")]) == 2
    assert "error: This is a Mask R-CNN (config.mask_head is set)" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mask"]


def test_export_never_overwrites_an_existing_output(converted_model, tmp_path):
    from faster_rcnn_hub import FasterRCNNHubError, export

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    with pytest.raises(FasterRCNNHubError, match="Not overwriting"):
        export(converted_model("tiny_r50_fpn_coco"), existing)
    assert [path.name for path in existing.iterdir()] == ["notes.txt"]


def test_export_and_detect_commands(converted_model, onnx_export, tmp_path, capsys):
    from faster_rcnn_hub.cli.main import main

    folder = converted_model("tiny_r50_fpn_coco")
    assert main(["export", str(folder), str(tmp_path / "out"), "--opset", "15"]) == 2
    assert "error: --opset must be an integer of at least 16" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

    image = str(IMAGES / "coffee.png")
    assert main(["detect", image, "--model", str(folder), "--backend", "onnxruntime", "--no-draw"]) == 2
    assert "not an exported model folder" in capsys.readouterr().err

    reports = {}
    for backend, model in (("torch", folder), ("onnxruntime", onnx_export("tiny_r50_fpn_coco"))):
        json_path = tmp_path / f"{backend}.json"
        arguments = ["detect", image, "--model", str(model), "--backend", backend, "--no-draw", "--threshold", "0.05"]
        assert main([*arguments, "--json", str(json_path), "--device", "cpu"]) == 0
        reports[backend] = json.loads(json_path.read_text())[image]
    expected, found = reports["torch"], reports["onnxruntime"]
    assert (found["width"], found["height"]) == (expected["width"], expected["height"])
    assert expected["detections"] and set(found["detections"][0]) == set(expected["detections"][0])
    comparison = compare_detections(*columns(expected["detections"]), *columns(found["detections"]))
    assert_matches(comparison, "detect --backend onnxruntime")


C4 = dict(
    backbone_num_stages=3, backbone_strides=[1, 2, 2], backbone_dilations=[1, 1, 1], backbone_out_indices=[2],
    neck_type="none", anchor_scales=[2, 4, 8, 16, 32], anchor_strides=[16], roi_featmap_strides=[16],
    roi_output_size=14, roi_head_type="shared_res5",
)  # fmt: skip
DC5 = dict(
    backbone_strides=[1, 2, 2, 1], backbone_dilations=[1, 1, 1, 2], backbone_out_indices=[3], neck_type="none",
    anchor_scales=[2, 4, 8, 16, 32], anchor_strides=[16], roi_featmap_strides=[16],
)  # fmt: skip


def narrow_model_folder(folder, layout: dict):
    """A narrow ResNet-50 detector of the given layout with seeded weights scaled so that activations keep their
    size: its scores spread out (no ties, which any two correct NMS implementations may order differently)."""
    from faster_rcnn_hub import FasterRCNNConfig, FasterRCNNForObjectDetection, FasterRCNNImageProcessor

    config = FasterRCNNConfig(
        backbone_depth=50, backbone_base_channels=8, rpn_feat_channels=16, box_head_fc_channels=32, num_classes=5,
        id2label={index: f"class{index}" for index in range(5)}, rpn_nms_pre=300, rpn_max_per_img=200, **layout,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    model = FasterRCNNForObjectDetection(config).eval()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if "running_var" in name:
                tensor.copy_(noise.abs() + 0.5)
            elif tensor.dim() > 1:
                tensor.copy_(noise / tensor[0].numel() ** 0.5)
            elif name.endswith("weight"):
                tensor.copy_(1 + 0.1 * noise)
            else:
                tensor.copy_(0.1 * noise)
    model.save_pretrained(folder)
    FasterRCNNImageProcessor(size={"longest_edge": 512, "shortest_edge": 320}).save_pretrained(folder)
    return FasterRCNNForObjectDetection.from_pretrained(folder).eval(), FasterRCNNImageProcessor.from_pretrained(folder)


@pytest.mark.parametrize("layout", [C4, DC5], ids=["c4", "dc5"])
def test_single_map_layouts_export_with_parity(layout, tmp_path):
    from faster_rcnn_hub import export
    from faster_rcnn_hub.runtime import OnnxDetector

    model, processor = narrow_model_folder(tmp_path / "model", layout)
    detector = OnnxDetector(export(tmp_path / "model", tmp_path / "onnx"))
    for name in SIZES_IMAGES:
        image = Image.open(IMAGES / f"{name}.png")
        with torch.no_grad():
            outputs = model(**processor(images=[image]))
        count = int(outputs.num_detections[0])
        assert count > 0, f"{name}: the test needs detections to compare"
        boxes, scores, labels = detector.run(detector.preprocessor(image))
        comparison = compare_detections(
            outputs.pred_boxes[0, :count], outputs.scores[0, :count].tolist(), outputs.labels[0, :count].tolist(),
            boxes, scores.tolist(), labels.tolist(),
        )  # fmt: skip
        assert_matches(comparison, f"{name} onnx")


@pytest.mark.slow  # torch.export traces the whole detector symbolically: about a minute on 2 cores
def test_exported_program_with_dynamic_height_and_width_gives_the_eager_detections(
    loaded_model, converted_model, tmp_path
):
    from faster_rcnn_hub import Detector, FasterRCNNHubError, export
    from faster_rcnn_hub.runtime import Preprocessor

    case = "tiny_r50_fpn_coco"
    folder = export(converted_model(case), tmp_path / "program", format="exported-program")
    assert json.loads((folder / "export.json").read_text())["format"] == "exported-program"
    with pytest.raises(FasterRCNNHubError, match="torch.export.load"):
        Detector(folder, backend="onnxruntime")
    program = torch.export.load(str(folder / "model.pt2")).module()
    preprocessor = Preprocessor(json.loads((folder / "preprocessor_config.json").read_text()))
    for name in SIZES_IMAGES:
        prepared = preprocessor(Image.open(IMAGES / f"{name}.png"))
        with torch.no_grad():
            inputs = (prepared.pixel_values, prepared.image_size, prepared.rescale_factor)
            boxes, scores, labels = program(*(torch.from_numpy(value) for value in inputs))
        reference = torch_detections(loaded_model, case, name)
        assert_matches(compare_detections(*reference, boxes, scores.tolist(), labels.tolist()), f"{name} program")
