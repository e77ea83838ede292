"""The demo without a server: which models it offers, how it filters, the `demo` command, gradio staying
optional, and the Hugging Face Space folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import IMAGES
from faster_rcnn_hub import default_model
from faster_rcnn_hub.cli import main
from faster_rcnn_hub.demo import DEFAULT_MODEL_NAME, DetectionRunner, ModelCatalogue, select_detections
from faster_rcnn_hub.detection import Detection
from faster_rcnn_hub.errors import FasterRCNNHubError

ROOT = Path(__file__).resolve().parents[1]
TINY = "tiny_r50_fpn_coco"


@pytest.fixture
def no_default_model(monkeypatch, tmp_path):
    monkeypatch.setattr(default_model, "DEFAULT_MODEL_DIR", tmp_path / "no-default-model")


def test_catalogue_offers_the_default_model_first_then_those_given(converted_model, monkeypatch):
    model_dir = converted_model(TINY)
    monkeypatch.setattr(default_model, "DEFAULT_MODEL_DIR", model_dir)
    catalogue = ModelCatalogue.from_arguments([str(model_dir), "someone/a-hub-model"], device="cpu")
    assert catalogue.names == [DEFAULT_MODEL_NAME, str(model_dir), "someone/a-hub-model"]
    assert catalogue.detector(DEFAULT_MODEL_NAME) is catalogue.detector(DEFAULT_MODEL_NAME)  # loaded once
    assert catalogue.class_names(str(model_dir))[:3] == ["person", "bicycle", "car"]


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


def test_demo_command_serves_the_models_given(converted_model, no_default_model, monkeypatch, capsys):
    import faster_rcnn_hub.demo as demo_package

    launched = {}
    monkeypatch.setattr(demo_package, "launch_demo", lambda demo, **options: launched.update(demo=demo, **options))
    model_dir = str(converted_model(TINY))
    assert main(["demo", "--model", model_dir, "--host", "0.0.0.0", "--port", "8123", "--device", "cpu"]) == 0
    assert (launched["host"], launched["port"]) == ("0.0.0.0", 8123)
    config = launched["demo"].get_config_file()
    picker = next(c for c in config["components"] if c["props"].get("elem_id") == "model")
    assert picker["props"]["value"] == model_dir
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
    assert (space / "faster_rcnn_hub" / "demo" / "examples" / "astronaut.jpg").is_file()
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
