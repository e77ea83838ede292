"""Input a careless or hostile user gives the command line: nothing already written is lost, and every refusal is
one `error:` line with exit code 2, given before any work."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from conftest import IMAGES, MMDET
from faster_rcnn_hub.cli import main
from faster_rcnn_hub.default_model import default_model_dir, example_image_path
from training_helpers import tiny_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("hostile") / "data", num_images=2)


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fail the test if a command loads a model: its checks must come before any work."""
    from faster_rcnn_hub import detection
    from faster_rcnn_hub.models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the command finished checking its input and outputs")

    monkeypatch.setattr(detection, "Detector", refuse)
    monkeypatch.setattr(FasterRCNNForObjectDetection, "from_pretrained", refuse)


def one_error_line(capsys) -> str:
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and ": error: " in error, error
    return error


def test_detect_gives_images_with_one_file_name_annotated_copies_of_their_own(tmp_path, capsys):
    first, second = tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"
    for source, target in ((example_image_path(), first), (IMAGES / "tiny_noise.png", second)):
        target.parent.mkdir()
        shutil.copy(source, target)
    output = tmp_path / "out"
    assert main(["detect", str(first), str(second), "--output-dir", str(output), "--threshold", "0.9"]) == 0
    assert sorted(path.name for path in output.iterdir()) == ["x-2_detections.png", "x_detections.png"]
    assert Image.open(output / "x_detections.png").size == Image.open(first).size
    assert Image.open(output / "x-2_detections.png").size == Image.open(second).size
    assert f"annotated image: {output / 'x-2_detections.png'}" in capsys.readouterr().out


def test_annotated_names_never_take_another_images_name():
    from faster_rcnn_hub.cli.detection_commands import annotated_image_names

    assert annotated_image_names(["a/x.png", "b/x.png", "c/x-2.png", "d/X.jpg"]) == ["x", "x-3", "x-2", "X-4"]


def test_evaluate_never_overwrites_the_annotations_or_a_foreign_file(dataset, tmp_path, capsys, no_model_loading):
    annotations = dataset / "annotations.json"
    original = annotations.read_bytes()
    common = ["evaluate", "--annotations", str(annotations), "--images", str(dataset / "images")]
    for extra in ([], ["--overwrite"]):
        assert main([*common, "--results-json", str(annotations), *extra]) == 2
        assert "is also an input" in one_error_line(capsys)
    assert annotations.read_bytes() == original
    notes = tmp_path / "notes.json"
    notes.write_text('{"keep": true}')
    assert main([*common, "--results-json", str(notes)]) == 2
    assert "--overwrite" in one_error_line(capsys) and notes.read_text() == '{"keep": true}'
    assert main([*common, "--metrics-json", str(notes)]) == 2
    assert "--overwrite" in one_error_line(capsys) and notes.read_text() == '{"keep": true}'


def test_evaluate_replaces_its_own_earlier_results(tmp_path):
    from faster_rcnn_hub.cli.training_commands import _is_coco_results
    from faster_rcnn_hub.output_files import check_output_file

    earlier = tmp_path / "results.json"
    earlier.write_text(json.dumps([{"image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.5}]))
    check_output_file(earlier, "--results-json", is_own_output=_is_coco_results)  # no error: its own output
    earlier.write_text(json.dumps([{"image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4], "area": 12, "id": 1}]))
    with pytest.raises(ValueError, match="was not written by this command"):
        check_output_file(earlier, "--results-json", is_own_output=_is_coco_results)


def test_unwritable_outputs_are_refused_before_any_work(dataset, tmp_path, capsys, no_model_loading):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep")
    image = str(example_image_path())
    assert main(["detect", image, "--output-dir", str(blocker / "out")]) == 2
    assert "--output-dir" in one_error_line(capsys)
    assert main(["detect", image, "--no-draw", "--json", str(blocker / "d.json")]) == 2
    assert "--json" in one_error_line(capsys)
    assert main(["detect", image, "--no-draw", "--json", str(tmp_path)]) == 2
    assert "is a folder" in one_error_line(capsys)
    assert main(["evaluate", "--annotations", str(dataset / "annotations.json"), "--images", str(dataset / "images"),
                 "--results-json", str(blocker / "r.json")]) == 2  # fmt: skip
    assert "--results-json" in one_error_line(capsys)
    assert main(["predict", "--images", image, "--output", str(blocker / "p.jsonl")]) == 2
    assert "--output" in one_error_line(capsys)
    assert main(["train", "--annotations", str(dataset / "annotations.json"), "--images", str(dataset / "images"),
                 "--output-dir", str(blocker / "run"), "--model", str(default_model_dir())]) == 2  # fmt: skip
    assert "--output-dir" in one_error_line(capsys)
    assert main(["convert", str(MMDET / "tiny_r50_fpn_coco" / "tiny_r50_fpn_coco.pth"), str(blocker / "out")]) == 2
    assert "OUTPUT_DIR" in one_error_line(capsys)
    assert blocker.read_text() == "keep"


def test_detect_refuses_a_foreign_json_and_never_writes_over_an_image(tmp_path, capsys, no_model_loading):
    image = tmp_path / "x.png"
    shutil.copy(example_image_path(), image)
    original = image.read_bytes()
    assert main(["detect", str(image), "--no-draw", "--json", str(image), "--overwrite"]) == 2
    assert "is also an input" in one_error_line(capsys) and image.read_bytes() == original
    notes = tmp_path / "notes.json"
    notes.write_text("[1, 2]")
    assert main(["detect", str(image), "--no-draw", "--json", str(notes)]) == 2
    assert "--overwrite" in one_error_line(capsys) and notes.read_text() == "[1, 2]"


def test_detect_decodes_one_window_of_images_at_a_time(tmp_path, monkeypatch, capsys):
    from faster_rcnn_hub.detection import Detector
    from faster_rcnn_hub.models.faster_rcnn import image_io

    images = []
    for index in range(6):
        images.append(tmp_path / f"{index}.png")
        Image.open(IMAGES / "tiny_noise.png").save(images[-1])
    decoded, decoded_at_each_batch = [], []
    load_image, detect_batch = image_io.load_image, Detector.detect_batch
    monkeypatch.setattr(image_io, "load_image", lambda path, *args, **kwargs: decoded.append(path) or load_image(path))

    def counting_detect_batch(self, batch, *args, **kwargs):
        decoded_at_each_batch.append(len(decoded))
        return detect_batch(self, batch, *args, **kwargs)

    monkeypatch.setattr(Detector, "detect_batch", counting_detect_batch)
    assert main(["detect", *map(str, images), "--no-draw", "--batch-size", "1"]) == 0
    # --batch-size 1: four images in memory at a time, never all six.
    assert decoded_at_each_batch == [4, 6]
    assert capsys.readouterr().out.count("detections (score > 0.5)") == 6


def _remove(folder, name):
    (folder / name).unlink()


def _truncate_weights(folder, name):
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])


def _narrow_class_layer(folder, name):
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / name)
    tensors["roi_heads.box_predictor.cls_score.weight"] = tensors["roi_heads.box_predictor.cls_score.weight"][:-1]
    save_file(tensors, folder / name, metadata={"format": "pt"})


def _break_json(folder, name):
    (folder / name).write_text('{"model_type": "faster_rcnn",')


def _quote_num_classes(folder, name):
    config = json.loads((folder / name).read_text())
    (folder / name).write_text(json.dumps(config | {"num_classes": str(len(config["id2label"]))}))


@pytest.mark.parametrize(
    ("breaker", "name", "expected"),
    [
        (_remove, "preprocessor_config.json", "has no preprocessor_config.json"),
        (_remove, "config.json", "has no config.json"),
        (_remove, "model.safetensors", "holds no weights (no model.safetensors)"),
        (_truncate_weights, "model.safetensors", "model.safetensors is truncated"),
        (_narrow_class_layer, "model.safetensors", "cls_score.weight: the file has [5, 256], the config needs [6, "),
        (_break_json, "config.json", "config.json is not valid JSON"),
        (_break_json, "preprocessor_config.json", "preprocessor_config.json is not valid JSON"),
        (_quote_num_classes, "config.json", "config.json: num_classes must be a positive integer, got '5'"),
    ],
)
def test_a_broken_model_folder_is_one_error_naming_the_file(tmp_path, capsys, breaker, name, expected):
    folder = tmp_path / "model"
    shutil.copytree(default_model_dir(), folder)
    breaker(folder, name)
    assert main(["detect", str(example_image_path()), "--model", str(folder), "--no-draw"]) == 2
    assert expected in one_error_line(capsys)


def test_a_missing_model_folder_or_device_is_one_error(tmp_path, capsys, monkeypatch):
    import torch

    image = str(example_image_path())
    assert main(["detect", image, "--model", str(tmp_path / "nonexistent"), "--no-draw"]) == 2
    assert "Model folder not found" in one_error_line(capsys)
    assert main(["detect", image, "--model", "/nonexistent", "--no-draw"]) == 2
    assert "Model folder not found: /nonexistent" in one_error_line(capsys)
    assert main(["detect", image, "--model", "nobody/no-such-model", "--no-draw"]) == 2
    assert "Cannot load the model 'nobody/no-such-model'" in one_error_line(capsys)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for command in (["detect", image, "--no-draw"], ["predict", "--images", image, "--output", str(tmp_path / "o")]):
        assert main([*command, "--device", "cuda"]) == 2
        assert "--device cuda: this machine has no usable CUDA GPU" in one_error_line(capsys)
    assert main(["detect", image, "--no-draw", "--device", "gpu"]) == 2
    assert "is not a device name" in one_error_line(capsys)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert main(["detect", image, "--no-draw", "--device", "cuda:3"]) == 2
    assert "has 1 CUDA GPU(s), numbered from 0; use cuda:0 to cuda:0" in one_error_line(capsys)


def _spoil_annotations(folder):
    """Seven problems, most of which used to go unnoticed until they changed a result or stopped a long run."""
    coco = json.loads((folder / "annotations.json").read_text())
    first = coco["annotations"][0]
    coco["annotations"].append(dict(first, id=900, category_id=99))
    coco["annotations"].append(dict(first, id=901, bbox=[10, 10, -4, 8]))
    coco["annotations"].append(dict(first, id=902, bbox=[10, 10, "4", 8]))
    coco["annotations"].append(dict(first, id=903, image_id=999))
    coco["categories"].append({"id": 77, "name": coco["categories"][0]["name"]})
    coco["images"].append(dict(coco["images"][0]))
    missing = coco["images"][1]["file_name"]
    (folder / "annotations.json").write_text(json.dumps(coco))
    return missing


def coco_first_image_id(folder) -> str:
    return str(json.loads((folder / "annotations.json").read_text())["images"][0]["id"])


def test_evaluate_and_train_list_every_annotation_problem_before_any_work(tmp_path, capsys, no_model_loading):
    folder = tiny_dataset(tmp_path / "data", num_images=2)
    missing = _spoil_annotations(folder)
    shutil.move(folder / "images" / missing, tmp_path / missing)
    annotations, images = str(folder / "annotations.json"), str(folder / "images")
    expected = [
        "has 7 problem(s)",
        "2 categories have the name",
        f"2 images have the id {coco_first_image_id(folder)!r}",
        "annotation 902: bbox must be 4 finite numbers [x, y, width, height], got [10, 10, '4', 8]",
        "annotation 903: image_id 999 is no image of the file",
        f"its file {folder / 'images' / missing} does not exist",
        "annotation 900: category_id 99 is no category of the file",
        "annotation 901: bbox [10, 10, -4, 8] has a width of -4 (it must be positive)",
    ]
    assert main(["evaluate", "--annotations", annotations, "--images", images]) == 2
    error = one_error_line(capsys)
    assert all(text in error for text in expected), error
    output = tmp_path / "run"
    assert main(["train", "--annotations", annotations, "--images", images, "--output-dir", str(output),
                 "--model", str(default_model_dir()), "--max-steps", "1"]) == 2  # fmt: skip
    error = one_error_line(capsys)
    assert all(text in error for text in expected), error
    assert not output.exists()


def test_an_empty_annotation_list_and_many_problems(tmp_path, capsys, no_model_loading):
    from faster_rcnn_hub.errors import InvalidAnnotationError
    from faster_rcnn_hub.training.coco_checks import check_coco_content

    folder = tiny_dataset(tmp_path / "data", num_images=1)
    coco = json.loads((folder / "annotations.json").read_text())
    (folder / "annotations.json").write_text(json.dumps(coco | {"annotations": []}))
    annotations, images = str(folder / "annotations.json"), str(folder / "images")
    assert main(["evaluate", "--annotations", annotations, "--images", images]) == 2
    assert "the 'annotations' list is empty" in one_error_line(capsys)
    boxes = [dict(coco["annotations"][0], id=index, bbox=[0, 0, 0, 5]) for index in range(25)]
    with pytest.raises(InvalidAnnotationError, match="has 25 problem.*annotation 19: .*; and 5 more") as raised:
        check_coco_content(coco | {"annotations": boxes}, folder / "annotations.json", folder / "images")
    assert "annotation 20:" not in str(raised.value)


def test_convert_names_the_tensors_that_hold_nan(tmp_path, capsys):
    import torch

    checkpoint = torch.load(MMDET / "tiny_r50_fpn_coco" / "tiny_r50_fpn_coco.pth", weights_only=False)
    weights = checkpoint["state_dict"]
    weights["roi_head.bbox_head.fc_cls.bias"][:2] = float("nan")
    weights["backbone.conv1.weight"].view(-1)[0] = float("inf")
    spoiled = tmp_path / "diverged.pth"
    torch.save(checkpoint, spoiled)
    assert main(["convert", str(spoiled), str(tmp_path / "out")]) == 2
    error = one_error_line(capsys)
    assert "holds NaN or infinite weights" in error
    assert "roi_head.bbox_head.fc_cls.bias (2 NaN of" in error and "backbone.conv1.weight (1 infinite of" in error
    assert not (tmp_path / "out").exists()


def test_a_folder_the_system_refuses_to_write_in_is_refused_before_any_work(tmp_path, capsys, monkeypatch,
                                                                           no_model_loading):  # fmt: skip
    # Tests run as root here, which may write in a chmod 555 folder: the refusal is simulated where it happens.
    from faster_rcnn_hub import output_files

    def permission_denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(output_files.tempfile, "TemporaryFile", permission_denied)
    image = str(example_image_path())
    for command in (["detect", image, "--output-dir", str(tmp_path)],
                    ["detect", image, "--no-draw", "--json", str(tmp_path / "d.json")],
                    ["predict", "--images", image, "--output", str(tmp_path / "p.jsonl")]):  # fmt: skip
        assert main(command) == 2
        assert f"cannot write in {tmp_path} (Permission denied)" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []
