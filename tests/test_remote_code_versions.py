"""A converted folder and a re-saved one load as remote code on every transformers release we support, where
faster_rcnn_hub is not importable, and give the installed package's detections bit for bit.

Each release is a folder of packages made by `scripts/setup-remote-code-envs.sh` from
`constraints/remote-code/transformers-*.txt` (`scripts/test.sh` makes them). The driver runs on this environment's
Python with `-S`: that folder first on its path (its transformers, huggingface_hub, tokenizers, ...), then
site-packages (torch, torchvision, OpenCV), and no faster_rcnn_hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import IMAGES
from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor
from isolated_python import REMOTE_DRIVER, run_isolated

ROOT = Path(__file__).resolve().parents[1]
RELEASE_FILES = sorted((ROOT / "constraints" / "remote-code").glob("transformers-*.txt"))
ENVS = Path(os.environ.get("FASTER_RCNN_HUB_REMOTE_CODE_ENVS", ROOT / ".venv-remote-code"))
IMAGE_NAMES = ["chelsea.png", "wide_pattern.png"]


def test_the_releases_include_the_oldest_supported_and_the_0_x_breaking_ones():
    releases = [path.stem.removeprefix("transformers-") for path in RELEASE_FILES]
    assert {"4.46.3", "4.57.6", "5.0.0"} <= set(releases), releases
    assert all(f"transformers=={release}" in path.read_text() for release, path in zip(releases, RELEASE_FILES))


@pytest.fixture(scope="module")
def folders(converted_model, tmp_path_factory) -> dict[str, Path]:
    """The tiny model as converted, and as saved again by the package (model and processor `save_pretrained`),
    both at a small test scale."""
    root = tmp_path_factory.mktemp("remote-code-versions")
    converted = Path(shutil.copytree(converted_model("tiny_r50_fpn_coco"), root / "converted"))
    settings = json.loads((converted / "preprocessor_config.json").read_text())
    settings["size"] = {"longest_edge": 400, "shortest_edge": 240}
    (converted / "preprocessor_config.json").write_text(json.dumps(settings))
    resaved = root / "resaved"
    FasterRCNNForObjectDetection.from_pretrained(converted).save_pretrained(resaved)
    FasterRCNNImageProcessor.from_pretrained(converted).save_pretrained(resaved)
    return {"converted": converted, "resaved": resaved}


@pytest.fixture(scope="module")
def package_detections(folders) -> list[dict]:
    model = FasterRCNNForObjectDetection.from_pretrained(folders["converted"]).eval()
    processor = FasterRCNNImageProcessor.from_pretrained(folders["converted"])
    detections = []
    for name in IMAGE_NAMES:
        with torch.no_grad():
            outputs = model(**processor(images=[Image.open(IMAGES / name)]))
        result = processor.post_process_object_detection(outputs, threshold=0.0)[0]
        detections.append({key: value.tolist() for key, value in result.items()})
    return detections


def _installed_env(requirements: Path) -> Path:
    env = ENVS / requirements.stem
    stamp = env / ".installed-from"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    if not stamp.is_file() or stamp.read_text().strip() != wanted:
        reason = f"{env} is missing or out of date: run `bash scripts/setup-remote-code-envs.sh`"
        if os.environ.get("FASTER_RCNN_HUB_REQUIRE_REMOTE_CODE_ENVS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return env


@pytest.mark.parametrize("requirements", RELEASE_FILES, ids=[path.stem for path in RELEASE_FILES])
def test_converted_and_resaved_folders_load_as_remote_code_on_the_release(
    requirements, folders, package_detections, tmp_path
):
    env = _installed_env(requirements)
    driver = tmp_path / "driver.py"
    driver.write_text(REMOTE_DRIVER)
    paths = [str(IMAGES / name) for name in IMAGE_NAMES]
    names = os.pathsep.join(str(folder) for folder in folders.values())
    done = run_isolated(driver, names, *paths, tmp_path=tmp_path, extra_paths=[env])
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])
    assert remote["transformers"] == requirements.stem.removeprefix("transformers-")
    for kind, folder in folders.items():
        found = remote["folders"][str(folder)]
        # The same code on the same torch: the same floats, not merely close ones.
        assert found["model"] == package_detections, kind
        for piped, expected in zip(found["pipeline"], package_detections):
            assert [item["score"] for item in piped] == expected["scores"], kind
            boxes = [[item["box"][key] for key in ("xmin", "ymin", "xmax", "ymax")] for item in piped]
            assert boxes == [[int(value) for value in box] for box in expected["boxes"]], kind


# Loads each damaged folder (argv[1:]) as remote code and prints, per folder, the exception's class and message.
STRICT_DRIVER = """
import json, sys
from transformers import AutoModelForObjectDetection

report = {}
for folder in sys.argv[1:]:
    try:
        AutoModelForObjectDetection.from_pretrained(folder, trust_remote_code=True)
        report[folder] = ["loaded", ""]
    except Exception as error:
        report[folder] = [type(error).__name__, str(error)]
print(json.dumps(report))
"""


# The oldest release only: its loading info differs most from the installed release's, which
# tests/test_weight_loading.py checks in-process; one more subprocess per release would cost CI about 10 s each.
OLDEST_RELEASE = RELEASE_FILES[:1]


@pytest.mark.parametrize("requirements", OLDEST_RELEASE, ids=[path.stem for path in OLDEST_RELEASE])
def test_weights_that_do_not_fit_are_refused_as_remote_code_on_the_release(requirements, folders, tmp_path):
    """Strict loading is the model code's own: loaded as remote code, a weights file with a missing, an extra or a
    mis-shaped tensor is refused, naming the tensor."""
    from safetensors.torch import load_file, save_file

    env = _installed_env(requirements)
    name = "roi_heads.box_predictor.cls_score"
    damages = {
        "missing": (
            lambda tensors: tensors.pop(f"{name}.weight"),
            f"missing tensors (the model would initialise them at random): {name}.weight",
        ),
        "extra": (
            lambda tensors: tensors.__setitem__("roi_heads.extra.weight", torch.zeros(3)),
            "tensors the model has no place for: roi_heads.extra.weight",
        ),
        "mismatched": (
            lambda tensors: tensors.__setitem__(f"{name}.bias", torch.zeros(7)),
            f"tensors of the wrong shape: {name}.bias",
        ),
    }
    damaged = {}
    for kind, (damage, _) in damages.items():
        folder = Path(shutil.copytree(folders["resaved"], tmp_path / kind))
        tensors = load_file(folder / "model.safetensors")
        damage(tensors)
        save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
        damaged[kind] = folder
    driver = tmp_path / "strict_driver.py"
    driver.write_text(STRICT_DRIVER)
    done = run_isolated(driver, *map(str, damaged.values()), tmp_path=tmp_path, extra_paths=[env])
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for kind, folder in damaged.items():
        error_class, message = report[str(folder)]
        assert error_class == "WeightsMismatchError" and damages[kind][1] in message, (kind, error_class, message)
