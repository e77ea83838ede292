"""`faster-rcnn-hub detect`: printed detections, annotated images, JSON, and clear errors."""

from __future__ import annotations

import json
import shutil

from PIL import Image

from conftest import IMAGES
from faster_rcnn_hub.cli import main
from faster_rcnn_hub.detection import Detector

TINY = "tiny_r50_fpn_coco"


def test_detect_prints_draws_and_writes_json(converted_model, tmp_path, capsys):
    model_dir = converted_model(TINY)
    image = IMAGES / "coffee.png"
    code = main(["detect", str(image), "--model", str(model_dir), "--threshold", "0.3",
                 "--output-dir", str(tmp_path), "--json", str(tmp_path / "detections.json")])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "detections.json").read_text())[str(image)]
    expected = Detector(model_dir, device="cpu")(image, threshold=0.3)
    assert [item["score"] for item in report["detections"]] == [d.score for d in expected]
    assert f"{len(expected)} detections" in printed
    assert all(item["score"] > 0.3 for item in report["detections"])
    annotated = Image.open(tmp_path / "coffee_detections.png")
    assert annotated.size == Image.open(image).size
    assert annotated.convert("RGB").tobytes() != Image.open(image).convert("RGB").tobytes()


def test_detect_refuses_to_overwrite_and_bad_images(converted_model, tmp_path, capsys):
    model_dir = converted_model(TINY)
    shutil.copy(IMAGES / "tiny_noise.png", tmp_path / "tiny_noise.png")
    existing = tmp_path / "out" / "tiny_noise_detections.png"
    existing.parent.mkdir()
    existing.write_bytes(b"keep")
    assert main(["detect", str(tmp_path / "tiny_noise.png"), "--model", str(model_dir), "--output-dir", str(existing.parent)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == b"keep"

    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(["detect", str(tmp_path / "broken.png"), "--model", str(model_dir), "--output-dir", str(tmp_path)]) == 2
    assert "not a readable image" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "missing.png"), "--model", str(model_dir)]) == 2
    assert "not found" in capsys.readouterr().err


def test_detect_without_model_uses_the_bundled_default_or_says_how_to_choose(tmp_path, capsys, monkeypatch):
    from faster_rcnn_hub import default_model

    monkeypatch.setattr(default_model, "DEFAULT_MODEL_DIR", tmp_path / "no-model-here")
    assert main(["detect", str(IMAGES / "tiny_noise.png"), "--output-dir", str(tmp_path)]) == 2
    assert "pass --model" in capsys.readouterr().err
