"""The torch-free runtime: its NumPy preprocessing equals the image processor's bit for bit, and an exported model
runs, and gives the PyTorch model's detections, in a Python that cannot import torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import faster_rcnn_hub
from conftest import IMAGES
from parity import assert_matches, compare_detections

pytest.importorskip("onnxruntime")

# Loads the runtime where torch, torchvision and transformers cannot be imported, runs it on the images
# (argv[1]: the export folder, argv[2:]: images) and checks that none of them was loaded on the way.
BLOCKED_DRIVER = """
import importlib.abc, sys

BLOCKED = ("torch", "torchvision", "transformers")

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, Blocker())
from faster_rcnn_hub.runtime.__main__ import main

code = main([*sys.argv[1:], "--threshold", "0.05"])
loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
if loaded:
    sys.exit(f"loaded {loaded}")
sys.exit(code)
"""


@pytest.mark.parametrize("case", ["tiny_r50_fpn_coco", "tiny_r50_caffe_fpn_voc"])
def test_preprocessing_equals_the_image_processor_bit_for_bit(loaded_model, case):
    from faster_rcnn_hub.models.faster_rcnn.roi_heads import _inverse_scale_factors
    from faster_rcnn_hub.runtime import Preprocessor

    _, processor = loaded_model(case)
    preprocessor = Preprocessor(processor.to_dict())
    images = [Image.open(IMAGES / f"{name}.png") for name in ("astronaut", "chelsea", "wide_pattern", "tiny_noise")]
    images.append(images[0].convert("L"))  # grey, copied to three channels
    for image in images:
        expected = processor(images=[image])
        prepared = preprocessor(image)
        height, width = expected["padded_sizes"][0].tolist()
        assert prepared.pixel_values.shape == (1, 3, height, width)
        # Equal bits, not close values: the torch-free runtime must feed the graph exactly the processor's pixels.
        assert np.array_equal(prepared.pixel_values, expected["pixel_values"][:, :, :height, :width].numpy())
        assert prepared.image_size.tolist() == expected["image_sizes"][0].tolist()
        assert prepared.original_size == tuple(expected["original_sizes"][0].tolist())
        factors = _inverse_scale_factors(tuple(prepared.image_size.tolist()), prepared.original_size)
        assert np.array_equal(prepared.rescale_factor, np.asarray(factors, dtype=np.float32))


def test_runtime_without_torch_gives_the_torch_model_s_detections(loaded_model, onnx_export, tmp_path):
    case = "tiny_r50_fpn_coco"
    images = [str(IMAGES / f"{name}.png") for name in ("coffee", "wide_pattern")]
    source = Path(faster_rcnn_hub.__file__).resolve().parents[1]
    environment = {**os.environ, "PYTHONPATH": str(source), "HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", BLOCKED_DRIVER, str(onnx_export(case)), *images],
        env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    model, processor = loaded_model(case)
    import torch

    for path in images:
        image = Image.open(path)
        with torch.no_grad():
            outputs = model(**processor(images=[image]))
        expected = processor.post_process_object_detection(outputs, threshold=0.05)[0]
        found = report[path]
        assert (found["width"], found["height"]) == image.size
        assert len(expected["scores"]) > 0, "the test needs detections above the threshold"
        comparison = compare_detections(
            expected["boxes"], expected["scores"].tolist(), expected["labels"].tolist(),
            [d["box"] for d in found["detections"]], [d["score"] for d in found["detections"]],
            [d["label_id"] for d in found["detections"]],
        )  # fmt: skip
        assert_matches(comparison, f"torch-free runtime on {path}")


def test_runtime_refuses_a_torch_model_folder_with_the_way_to_export(converted_model, capsys):
    from faster_rcnn_hub.runtime.__main__ import main

    assert main([str(converted_model("tiny_r50_fpn_coco")), str(IMAGES / "coffee.png")]) == 2
    error = capsys.readouterr().err
    assert "not an exported model folder" in error and "faster-rcnn-hub export" in error


def test_bundled_model_exports_to_openvino_and_runs_without_torch(tmp_path, capsys):
    pytest.importorskip("openvino")
    from faster_rcnn_hub import Detector
    from faster_rcnn_hub.cli.main import main
    from faster_rcnn_hub.default_model import default_model_dir, example_image_path

    assert main(["export", "default", str(tmp_path / "openvino"), "--format", "openvino"]) == 0
    assert "exported default" in capsys.readouterr().out
    image = str(example_image_path())
    source = Path(faster_rcnn_hub.__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", BLOCKED_DRIVER, str(tmp_path / "openvino"), image],
        env={**os.environ, "PYTHONPATH": str(source), "HOME": str(tmp_path)}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)[image]["detections"]
    expected = Detector(default_model_dir(), device="cpu")(image, threshold=0.05)
    assert expected, "the test needs detections above the threshold"
    comparison = compare_detections(
        [d.box for d in expected], [d.score for d in expected], [d.label_id for d in expected],
        [d["box"] for d in found], [d["score"] for d in found], [d["label_id"] for d in found],
    )  # fmt: skip
    assert_matches(comparison, "bundled model, OpenVINO without torch")


def test_missing_runtimes_name_the_extra_that_installs_them(onnx_export, tmp_path, monkeypatch):
    from faster_rcnn_hub.errors import MissingDependencyError
    from faster_rcnn_hub.exporting.onnx_export import import_onnx
    from faster_rcnn_hub.exporting.openvino_export import export_openvino
    from faster_rcnn_hub.runtime import OnnxDetector

    folder = onnx_export("tiny_r50_fpn_coco")
    for name in ("onnx", "onnxruntime", "openvino"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'faster-rcnn-hub\[export\]'"):
        OnnxDetector(folder)
    with pytest.raises(MissingDependencyError, match=r"pip install 'faster-rcnn-hub\[export\]'"):
        import_onnx()
    with pytest.raises(MissingDependencyError, match=r"pip install 'faster-rcnn-hub\[export\]'"):
        export_openvino(folder / "model.onnx", tmp_path / "model.xml")
