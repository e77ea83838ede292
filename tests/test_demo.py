"""The demo without a server: which models it offers, how it filters, the `demo` command, gradio staying
optional, and the Hugging Face Space folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import IMAGES
from PIL import Image

from faster_rcnn_hub import default_model
from faster_rcnn_hub.cli import main
from faster_rcnn_hub.data.synthetic import SHAPE_CLASSES, generate_image
from faster_rcnn_hub.demo import DEFAULT_MODEL_NAME, DetectionRunner, ModelCatalogue, select_detections
from faster_rcnn_hub.demo.analysis import annotate_for_display
from faster_rcnn_hub.demo.interface import example_paths, models_overview
from faster_rcnn_hub.demo.last_stage import rerun_last_stage
from faster_rcnn_hub.demo.models import PHOTO_KIND, SHAPES_KIND
from faster_rcnn_hub.detection import Detection, Detector
from faster_rcnn_hub.detection.drawing import label_spot
from faster_rcnn_hub.errors import FasterRCNNHubError
from faster_rcnn_hub.models.faster_rcnn.nms import batched_nms

ROOT = Path(__file__).resolve().parents[1]
TINY = "tiny_r50_fpn_coco"


@pytest.fixture
def no_default_model(monkeypatch, tmp_path):
    monkeypatch.setattr(default_model, "DEFAULT_MODEL_DIR", tmp_path / "no-default-model")


def test_catalogue_offers_the_models_given_then_the_default_under_friendly_names(converted_model, tmp_path):
    model_dir = converted_model(TINY)
    # The same model twice, from two folders: the page names them by folder, never by server path.
    copy = tmp_path / "coco_detector"
    shutil.copytree(model_dir, copy)
    catalogue = ModelCatalogue.from_arguments([str(copy), str(model_dir), str(copy), "someone/a-hub-model"])
    assert catalogue.names == [
        "coco_detector", model_dir.name, "coco_detector (2)", "someone/a-hub-model", DEFAULT_MODEL_NAME
    ]
    assert catalogue.detector("coco_detector") is catalogue.detector("coco_detector")  # loaded once
    assert catalogue.class_names("coco_detector")[:3] == ["person", "bicycle", "car"]
    assert catalogue.names_of_kind(PHOTO_KIND) == catalogue.names[:4]
    assert catalogue.names_of_kind(SHAPES_KIND) == [DEFAULT_MODEL_NAME]
    assert "80 COCO classes" in catalogue.infos["coco_detector"].description
    assert "Synthetic-shapes demo model" in catalogue.infos[DEFAULT_MODEL_NAME].description
    assert catalogue.infos["someone/a-hub-model"].card == (
        "[Model card on the Hugging Face Hub](https://huggingface.co/someone/a-hub-model)"
    )
    assert catalogue.infos[DEFAULT_MODEL_NAME].card.startswith("# faster-rcnn-hub default model: synthetic shapes")
    overview = models_overview(catalogue)
    assert "**Real-photo models:** coco_detector" in overview and "**Synthetic-shapes model:**" in overview
    assert str(tmp_path) not in overview + "".join(str(info) for info in catalogue.infos.values())


def test_page_says_when_only_the_shapes_model_is_served():
    catalogue = ModelCatalogue.from_arguments([], device="cpu")
    assert catalogue.names == [DEFAULT_MODEL_NAME]
    assert "No real-photo model on this server" in models_overview(catalogue)
    assert [path.name for path in example_paths(SHAPES_KIND)] == ["shapes_1.png", "shapes_4.png", "shapes_7.png"]
    assert [path.name for path in example_paths(PHOTO_KIND)][0] == "astronaut.jpg"
    # The shape examples are what the shapes model knows: it finds every shape the generator drew.
    runner = DetectionRunner(catalogue)
    truth = generate_image(1000003, 1)
    result = runner(example_paths(SHAPES_KIND)[0], DEFAULT_MODEL_NAME, threshold=0.5)
    assert sorted(d.label for d in result.detections) == sorted(SHAPE_CLASSES[c] for c in truth.classes)
    assert result.class_counts() == {"circle": 2, "cross": 2, "square": 1, "star": 1, "triangle": 1}
    assert "· circle 2, cross 2, square 1, star 1, triangle 1 ·" in result.summary()


def test_catalogue_says_when_no_model_is_available_or_a_model_is_wrong(no_default_model, tmp_path):
    with pytest.raises(FasterRCNNHubError, match="No model to serve.*--model"):
        ModelCatalogue.from_arguments([])
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(FasterRCNNHubError, match="not a converted model folder"):
        ModelCatalogue.from_arguments([str(tmp_path / "not-a-model")])

    catalogue = ModelCatalogue.from_arguments(["nobody/no-such-model"], device="cpu")
    with pytest.raises(FasterRCNNHubError, match="Could not load model 'nobody/no-such-model'"):
        catalogue.detector("nobody/no-such-model")
    with pytest.raises(FasterRCNNHubError, match="Unknown model 'other'"):
        catalogue.detector("other")


def test_threshold_filter_keeps_exactly_what_the_processor_keeps():
    # The processor compares float32 scores with the threshold in float32: a score equal to float32(0.3), a
    # hair above the float64 0.3, is dropped at threshold 0.3.
    on_the_edge = float(np.float32(0.3))
    assert not bool(torch.tensor([on_the_edge], dtype=torch.float32) > 0.3)
    detections = [
        Detection("cat", 15, on_the_edge, [0.0, 0.0, 1.0, 1.0]),
        Detection("dog", 16, 0.31, [0.0, 0.0, 1.0, 1.0]),
        Detection("cat", 15, 0.9, [0.0, 0.0, 1.0, 1.0]),
    ]
    assert [d.score for d in select_detections(detections, 0.3)] == [0.31, 0.9]
    assert [d.label for d in select_detections(detections, 0.0, classes=["cat"])] == ["cat", "cat"]


def test_runner_runs_the_model_once_per_image_and_matches_the_python_api(converted_model, tmp_path):
    model_dir = converted_model(TINY)
    catalogue = ModelCatalogue({"tiny": model_dir}, device="cpu")
    runner = DetectionRunner(catalogue)
    image = IMAGES / "chelsea.png"
    first = runner(image, "tiny", threshold=0.3)
    again = runner(image, "tiny", threshold=0.6)
    assert not first.cached and again.cached and again.run is first.run
    expected = catalogue.detector("tiny")(image, threshold=0.3)
    assert first.detections == expected
    assert again.detections == [d for d in expected if d.score > 0.6]  # the boundary is tested above
    assert first.report()["detections"] == [d.to_dict() for d in first.detections]

    with pytest.raises(FasterRCNNHubError, match="must lie in"):
        runner(image, "tiny", threshold=1.5)
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(FasterRCNNHubError, match="holiday.png is not a readable image"):
        runner(tmp_path / "notes.png", "tiny", image_name="holiday.png")


def test_runner_reruns_only_the_last_stage_as_the_model_would_with_those_settings(converted_model):
    model_dir = converted_model(TINY)
    catalogue = ModelCatalogue({"tiny": model_dir}, device="cpu")
    runner = DetectionRunner(catalogue)
    image = IMAGES / "coffee.png"
    default = runner(image, "tiny", threshold=0.05)
    assert (default.iou_threshold, default.max_detections) == (0.5, 100)
    # The same stage re-run at the model's own settings gives exactly the model's detections.
    settings = default.run.settings
    id2label = catalogue.detector("tiny").model.config.id2label
    assert rerun_last_stage(default.run.candidates, settings, 0.5, 100, id2label) == default.detections
    stricter = runner(image, "tiny", threshold=0.05, iou_threshold=0.3, max_detections=12)
    assert stricter.cached and stricter.run is default.run  # the backbone did not run again
    assert "(NMS IoU 0.30, at most 12)" in stricter.summary()
    assert stricter.report()["nms_iou_threshold"] == 0.3 and stricter.report()["max_detections"] == 12

    # What the model itself gives when its last stage has these settings.
    reference = Detector(model_dir, device="cpu")
    reference.model.roi_heads.class_nms = partial(batched_nms, iou_threshold=0.3)
    reference.model.roi_heads.max_per_img = 12
    expected = reference(image, threshold=0.05)
    assert len(expected) == 12 and expected != default.detections[:12]
    assert stricter.detections == expected

    with pytest.raises(FasterRCNNHubError, match="Max detections must lie between 1 and the model's own 100"):
        runner(image, "tiny", max_detections=101)


def test_demo_command_serves_the_models_given(converted_model, no_default_model, monkeypatch, capsys):
    import faster_rcnn_hub.demo as demo_package

    launched = {}
    monkeypatch.setattr(demo_package, "launch_demo", lambda demo, **options: launched.update(demo=demo, **options))
    model_dir = str(converted_model(TINY))
    assert main(["demo", "--model", model_dir, "--host", "0.0.0.0", "--port", "8123", "--device", "cpu"]) == 0
    assert (launched["host"], launched["port"]) == ("0.0.0.0", 8123)
    config = launched["demo"].get_config_file()
    picker = next(c for c in config["components"] if c["props"].get("elem_id") == "model")
    assert picker["props"]["value"] == Path(model_dir).name
    assert config["components"] and any(
        dependency.get("api_name") == "detect" for dependency in config["dependencies"]
    )

    assert main(["demo"]) == 2
    assert "No model to serve" in capsys.readouterr().err


def test_package_and_other_commands_work_without_gradio(converted_model):
    # A fresh interpreter where `import gradio` fails, as on an install without the [demo] extra.
    script = (
        "import sys; sys.modules['gradio'] = None\n"
        "import faster_rcnn_hub, faster_rcnn_hub.demo\n"
        "from faster_rcnn_hub.cli import main\n"
        f"assert main(['detect', {str(IMAGES / 'tiny_noise.png')!r}, '--model', {str(converted_model(TINY))!r},"
        " '--no-draw']) == 0\n"
        "sys.exit(main(['demo']))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "detections" in result.stdout
    assert "pip install 'faster-rcnn-hub[demo]'" in result.stderr


def test_built_space_runs_its_own_copy_of_the_package(converted_model, tmp_path):
    space = tmp_path / "space"
    subprocess.run(["bash", str(ROOT / "scripts" / "build-space.sh"), str(space)], check=True, capture_output=True)
    assert (space / "faster_rcnn_hub" / "demo" / "examples" / "photos" / "astronaut.jpg").is_file()
    assert (space / "faster_rcnn_hub" / "demo" / "examples" / "shapes" / "shapes_1.png").is_file()
    assert not list(space.rglob("__pycache__"))
    # What the Space does on start, minus the server: import app.py from its folder.
    script = (
        "import app, faster_rcnn_hub\n"
        "print(faster_rcnn_hub.__file__)\n"
        "print(type(app.demo).__name__)\n"
    )
    env = {"FASTER_RCNN_HUB_MODELS": str(converted_model(TINY)), "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "PATH": "/usr/bin:/bin"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=space, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    package_file, demo_type = result.stdout.split()[-2:]
    assert Path(package_file).is_relative_to(space) and demo_type == "Blocks"

    rebuilt = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-space.sh"), str(space)], capture_output=True, text=True
    )
    assert rebuilt.returncode != 0 and "not empty" in rebuilt.stderr


def test_labels_stay_inside_the_picture_and_off_each_other():
    image_size = (400, 300)
    label_size = (60.0, 16.0)
    # A box touching the top edge: no room above, so the label goes inside its top edge.
    assert label_spot([10.0, 0.0, 100.0, 50.0], label_size, image_size, []) == (10.0, 0.0, 70.0, 16.0)
    # A box at the right edge narrower than its label: the label is pulled left into the picture.
    assert label_spot([380.0, 100.0, 400.0, 150.0], label_size, image_size, []) == (340.0, 84.0, 400.0, 100.0)
    # Three boxes on one spot (a crowded image): each label finds a free place of its own.
    placed = []
    for _ in range(3):
        placed.append(label_spot([100.0, 100.0, 250.0, 200.0], label_size, image_size, placed))
    assert len(set(placed)) == 3
    assert not any(
        first[0] < second[2] and second[0] < first[2] and first[1] < second[3] and second[1] < first[3]
        for index, first in enumerate(placed) for second in placed[index + 1:]
    )  # fmt: skip
    assert all(0 <= left and right <= 400 and 0 <= top and bottom <= 300 for left, top, right, bottom in placed)


def test_annotated_picture_is_shown_between_800_and_1600_pixels():
    detection = Detection("circle", 0, 0.9, [10.0, 10.0, 60.0, 60.0])
    small = annotate_for_display(Image.new("RGB", (256, 128)), [detection])
    large = annotate_for_display(Image.new("RGB", (4000, 3000)), [detection])
    middle = annotate_for_display(Image.new("RGB", (1000, 500)), [detection])
    assert (small.size, large.size, middle.size) == ((800, 400), (1600, 1200), (1000, 500))


def test_model_calls_run_under_spaces_gpu_when_the_spaces_package_is_importable(monkeypatch, tmp_path):
    # What a ZeroGPU Space has: a `spaces` package whose GPU decorator attaches a GPU for each call.
    calls = []

    def gpu(function):
        def on_gpu(*args, **kwargs):
            calls.append(function.__name__)
            return function(*args, **kwargs)

        return on_gpu

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    runner = DetectionRunner(ModelCatalogue.from_arguments([], device="cpu"))
    image = example_paths(SHAPES_KIND)[0]
    result = runner(image, DEFAULT_MODEL_NAME, threshold=0.5)
    kept, _ = runner.detect_frame(Image.open(image), DEFAULT_MODEL_NAME, threshold=0.5)
    assert calls == ["_detect", "_detect"]
    assert kept == result.detections and len(kept) == 7

    monkeypatch.setitem(sys.modules, "spaces", None)  # elsewhere: `import spaces` fails, calls run as they are
    DetectionRunner(runner.catalogue)(image, DEFAULT_MODEL_NAME)
    assert len(calls) == 2
