"""Hostile and unusual input: image files, arrays, checkpoints, configs, interrupted conversions."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import IMAGES, MANIFESTS, MMDET, write_seeded_checkpoint
from faster_rcnn_hub import (
    FasterRCNNForObjectDetection,
    FasterRCNNImageProcessor,
    InvalidConfigError,
    InvalidImageError,
    load_image,
)
from faster_rcnn_hub.conversion import convert_checkpoint, load_mmdet_checkpoint
from faster_rcnn_hub.detection import Detector
from faster_rcnn_hub.models.faster_rcnn.image_io import MAX_IMAGE_PIXELS
from faster_rcnn_hub.models.faster_rcnn.image_processing_faster_rcnn import rescaled_size

TINY = "tiny_r50_fpn_coco"
TINY_CHECKPOINT = MMDET / TINY / f"{TINY}.pth"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels (a decompression bomb's header) with almost no data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def detector(converted_model):
    return Detector(converted_model(TINY), device="cpu")


# ---------------------------------------------------------------------------------------------- image files
@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"%PDF-1.4 definitely not an image", "not a readable image"),
        (_encoded(Image.new("RGB", (64, 64), "red"), "PNG")[:60], "truncated or corrupt"),
        (_encoded(Image.new("RGB", (64, 64), "red"), "JPEG")[:300], "truncated or corrupt"),
    ],
    ids=["zero-bytes", "not-an-image", "truncated-png", "truncated-jpeg"],
)
def test_unreadable_files_are_refused(tmp_path, data, message):
    path = tmp_path / "input.img"
    path.write_bytes(data)
    with pytest.raises(InvalidImageError, match=message):
        load_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(60_000, 60_000))  # 3.6e9 pixels in 200 bytes
    assert path.stat().st_size < 1000
    with pytest.raises(InvalidImageError, match="refusing to decode"):
        load_image(path)
    just_over = int(MAX_IMAGE_PIXELS**0.5) + 1
    path.write_bytes(_png_header_only(just_over, just_over))
    with pytest.raises(InvalidImageError, match="than the limit of"):
        load_image(path)


@pytest.mark.parametrize("size", [(1, 1), (20000, 1), (1, 20000)])
def test_extreme_aspect_ratios_give_valid_detections(detector, size):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    detections = detector(image, threshold=0.0)
    # The tiny random-weight model fills max_per_img on any input, so the checks below run on 100 boxes.
    assert len(detections) == detector.model.config.rcnn_max_per_img
    for detection in detections:
        x1, y1, x2, y2 = detection.box
        assert 0 <= x1 <= x2 <= size[0] and 0 <= y1 <= y2 <= size[1]


def test_exif_rotated_jpeg_is_read_as_the_viewer_shows_it(tmp_path):
    upright = Image.new("RGB", (80, 40), "white")
    upright.paste((255, 0, 0), (0, 0, 20, 40))  # red strip on the left
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways writes
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.size == (80, 40)
    pixels = np.asarray(loaded, dtype=int)
    assert pixels[:, :15, 0].mean() > 200 and pixels[:, :15, 1].mean() < 60
    assert pixels[:, 30:, 1].mean() > 200
    batch = FasterRCNNImageProcessor()(images=Image.open(path))
    assert batch["original_sizes"].tolist() == [[40, 80]]


@pytest.mark.parametrize(
    "bad,message",
    [
        (torch.tensor([[[float("inf")] * 4] * 4] * 3), "NaN or infinite"),
        (np.zeros((8, 8, 5), dtype=np.uint8), "channels"),
        (np.full((8, 8, 3), -5, dtype=np.int32), "Integer image values"),
    ],
    ids=["inf-tensor", "five-channels", "negative-integers"],
)
def test_bad_arrays_are_refused(bad, message):
    with pytest.raises(InvalidImageError, match=message):
        FasterRCNNImageProcessor()(images=bad)


def test_infinite_pixel_values_are_refused_by_the_model(loaded_model):
    model, _ = loaded_model(TINY)
    pixel_values = torch.zeros(1, 3, 32, 32)
    pixel_values[0, 1, 3, 3] = float("inf")
    with pytest.raises(InvalidImageError, match="NaN or infinite"):
        model(pixel_values=pixel_values)


# ------------------------------------------------------------------------------------------ property tests
def test_resized_sizes_are_mmdetections_on_every_fixture():
    """What mmdetection's Resize computed (`img_shape` of every reference image, at four test scales)."""
    checked = 0
    for reference_file in sorted(MMDET.glob("*/*.json")):
        if reference_file.name == "manifest.json":
            continue
        reference = json.loads(reference_file.read_text())
        manifest = json.loads((reference_file.parent / "manifest.json").read_text())
        scale = _test_scale(manifest)
        assert list(rescaled_size(*reference["ori_shape"], max(scale), min(scale))) == reference["img_shape"]
        checked += 1
    assert checked >= 30


def _test_scale(manifest: dict) -> list[int]:
    """The test Resize scale of a fixture case: from its embedded config, or from the zoo manifest of its config."""
    meta = manifest.get("meta") or {}
    if meta.get("cfg") or meta.get("config"):
        from faster_rcnn_hub.conversion import parse_config_text

        pipeline = parse_config_text(meta.get("cfg") or meta["config"])["test_pipeline"]
    else:
        zoo = [json.loads(path.read_text()) for path in sorted(MANIFESTS.glob("*.json"))]
        pipeline = next(entry["test_pipeline"] for entry in zoo if entry["config"] == manifest["config"])
    for step in pipeline:
        if step.get("type") in ("Resize", "MultiScaleFlipAug"):
            return step.get("scale", step.get("img_scale"))
    raise AssertionError(f"no Resize in {manifest['config']}'s test pipeline")


@settings(max_examples=300, deadline=None)
@given(height=st.integers(1, 6000), width=st.integers(1, 6000))
def test_resized_size_fits_the_scale_and_keeps_the_aspect_ratio(height, width):
    new_height, new_width = rescaled_size(height, width, 1333, 800)
    assert max(new_height, new_width) <= 1333 and min(new_height, new_width) <= 800
    assert max(new_height, new_width) == 1333 or min(new_height, new_width) == 800 or min(new_height, new_width) == 1
    assert abs(new_width / new_height - width / height) <= (width / height) * (1 / new_height) + 1 / new_height + 1e-9


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(1, 3000),
    width=st.integers(1, 3000),
    target=st.tuples(st.integers(1, 3000), st.integers(1, 3000)),
    corners=st.lists(st.tuples(*[st.floats(0.0, 1.0)] * 4), min_size=1, max_size=20),
)
def test_post_processing_rescales_each_axis_to_the_target_size(height, width, target, corners):
    """Boxes in original-image pixels come back in `target_sizes` pixels: x by target_width / width, y by
    target_height / height (computed here in float64), to float32 rounding."""
    boxes = torch.tensor(
        [[min(x1, x2) * width, min(y1, y2) * height, max(x1, x2) * width, max(y1, y2) * height]
         for x1, y1, x2, y2 in corners], dtype=torch.float64,
    )  # fmt: skip
    outputs = {
        "pred_boxes": boxes.float()[None],
        "scores": torch.full((1, len(boxes)), 0.9),
        "labels": torch.zeros((1, len(boxes)), dtype=torch.long),
        "num_detections": torch.tensor([len(boxes)]),
        "original_sizes": torch.tensor([[height, width]]),
    }
    processor = FasterRCNNImageProcessor()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a random target may be the original size swapped
        found = processor.post_process_object_detection(outputs, threshold=0.5, target_sizes=[target])[0]["boxes"]
    expected = boxes * torch.tensor([target[1] / width, target[0] / height] * 2, dtype=torch.float64)
    torch.testing.assert_close(found.double(), expected, rtol=1e-5, atol=1e-3)


def test_mmengine_training_checkpoint_converts_without_unsafe_unpickling(tmp_path):
    training = MMDET / TINY / "mmengine_training_checkpoint.pth"
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(training))
    assert "mmengine.logging.history_buffer.HistoryBuffer" in unsafe  # a real training checkpoint
    loaded = load_mmdet_checkpoint(training)
    plain = load_mmdet_checkpoint(TINY_CHECKPOINT)
    assert all(torch.equal(loaded.state_dict[key], plain.state_dict[key]) for key in plain.state_dict)
    result = convert_checkpoint(training, tmp_path / "out")
    assert result.config.num_classes == 80


def test_tampered_preprocessor_config_is_refused_naming_the_field(converted_model, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(converted_model(TINY), folder)
    path = folder / "preprocessor_config.json"
    settings_json = json.loads(path.read_text())
    settings_json["image_std"] = [0.0, 1.0, 1.0]
    path.write_text(json.dumps(settings_json))
    with pytest.raises(InvalidConfigError, match="image_std"):
        FasterRCNNImageProcessor.from_pretrained(folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config["backbone_style"] = "tensorflow"
    config_path.write_text(json.dumps(config))
    with pytest.raises(InvalidConfigError, match="backbone_style"):
        FasterRCNNForObjectDetection.from_pretrained(folder)


# ------------------------------------------------------------------------------------------- nothing lost
def _convert_command(checkpoint: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "faster_rcnn_hub.cli", "convert", str(checkpoint), str(output), *extra]


def test_killed_conversion_leaves_no_partial_output_and_keeps_the_previous(tmp_path):
    manifest = json.loads((MANIFESTS / "r50_fpn_1x_coco.json").read_text())
    checkpoint = write_seeded_checkpoint(manifest, tmp_path / "r50.pth", seed=3)
    config = tmp_path / "r50.py"
    from conftest import write_manifest_config

    write_manifest_config(manifest, config)
    output = tmp_path / "model"
    convert_checkpoint(TINY_CHECKPOINT, output)  # the previous output
    before = {path.name: path.read_bytes() for path in output.iterdir()}
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    process = subprocess.Popen(
        _convert_command(checkpoint, output, "--config", str(config), "--overwrite"),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        staging = list(tmp_path.glob(".model.partial-*"))
        if staging and any(staging[0].iterdir()):
            break  # it is writing the new model now
        time.sleep(0.005)
    assert process.poll() is None, "the conversion finished before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert {path.name: path.read_bytes() for path in output.iterdir()} == before
    # The next conversion cleans up what the killed one left behind, and succeeds.
    convert_checkpoint(checkpoint, output, config_path=config, overwrite=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model", "r50.pth", "r50.py"]
    assert FasterRCNNForObjectDetection.from_pretrained(output).config.num_classes == 80


def test_previous_output_moved_aside_by_a_killed_run_is_restored(tmp_path):
    output = tmp_path / "model"
    convert_checkpoint(TINY_CHECKPOINT, output)
    # What a run killed between its two renames leaves: the old output moved aside, nothing in place.
    dead_pid = 2**22 + 12345
    output.rename(tmp_path / f".model.old-{dead_pid}-abc")
    with pytest.raises(ValueError, match="already exists"):
        convert_checkpoint(TINY_CHECKPOINT, output)
    assert (output / "model.safetensors").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]


# ------------------------------------------------------------------------------------------- determinism
def test_inference_is_bit_identical_across_processes(converted_model, tmp_path):
    script = (
        "import json, sys\n"
        "from faster_rcnn_hub.detection import Detector\n"
        "detections = Detector(sys.argv[1], device='cpu')(sys.argv[2], threshold=0.0)\n"
        "print(json.dumps([[d.label_id, d.score.hex(), [v.hex() for v in d.box]] for d in detections]))\n"
    )
    command = [sys.executable, "-c", script, str(converted_model(TINY)), str(IMAGES / "coffee.png")]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    other_process = json.loads(subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout)
    detections = Detector(converted_model(TINY), device="cpu")(IMAGES / "coffee.png", threshold=0.0)
    this_process = [[d.label_id, d.score.hex(), [v.hex() for v in d.box]] for d in detections]
    assert other_process == this_process and len(this_process) > 0
