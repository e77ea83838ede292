"""Every save keeps a folder loadable without this package: the model code beside the weights, `auto_map` in
config.json, no processor class name in preprocessor_config.json; and the upload refuses a folder that lacks them.
(Loading such folders on each transformers release is test_remote_code_versions.py.)"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import IMAGES
from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor
from faster_rcnn_hub.errors import FasterRCNNHubError
from faster_rcnn_hub.hub import upload_plan
from faster_rcnn_hub.hub.remote_code import AUTO_MAP, remote_code_files, remote_loading_problems
from isolated_python import run_isolated

TINY = "tiny_r50_fpn_coco"
CODE_NAMES = sorted(path.name for path in remote_code_files())
EXPECTED_AUTO_MAP = {auto_class: f"{module}.{name}" for auto_class, module, name in AUTO_MAP}


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _code_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("*.py"))


@pytest.mark.parametrize("model_first", [True, False], ids=["model-then-processor", "processor-then-model"])
def test_saving_model_and_processor_writes_the_code_in_either_order(converted_model, tmp_path, model_first):
    source = converted_model(TINY)
    model = FasterRCNNForObjectDetection.from_pretrained(source)
    processor = FasterRCNNImageProcessor.from_pretrained(source)
    folder = tmp_path / "saved"
    for item in (model, processor) if model_first else (processor, model):
        item.save_pretrained(folder)
    assert _code_in(folder) == CODE_NAMES
    for name in CODE_NAMES:
        assert (folder / name).read_bytes() == (source / name).read_bytes()
    assert _json(folder / "config.json")["auto_map"] == EXPECTED_AUTO_MAP
    settings = _json(folder / "preprocessor_config.json")
    assert "image_processor_type" not in settings and "auto_map" not in settings
    assert remote_loading_problems(folder) == []
    assert [file.path_in_repo for file in upload_plan(folder)] == sorted(
        [*CODE_NAMES, "config.json", "model.safetensors", "preprocessor_config.json"]
    )


def test_a_processor_saved_alone_names_its_remote_class(tmp_path):
    FasterRCNNImageProcessor(size={"longest_edge": 500, "shortest_edge": 300}).save_pretrained(tmp_path)
    settings = _json(tmp_path / "preprocessor_config.json")
    assert settings["auto_map"] == {"AutoImageProcessor": EXPECTED_AUTO_MAP["AutoImageProcessor"]}
    assert _code_in(tmp_path) == CODE_NAMES


def _broken(folder: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(folder, tmp_path / name))


def test_upload_refuses_a_folder_that_needs_the_package_and_says_what_is_missing(converted_model, tmp_path):
    source = converted_model(TINY)
    no_module = _broken(source, tmp_path, "no-module")
    (no_module / "nms.py").unlink()
    with pytest.raises(FasterRCNNHubError, match=r"nms\.py is missing \(imported by .*\).*Nothing was uploaded"):
        upload_plan(no_module)

    named_processor = _broken(source, tmp_path, "named-processor")
    settings = _json(named_processor / "preprocessor_config.json")
    (named_processor / "preprocessor_config.json").write_text(
        json.dumps({**settings, "image_processor_type": "FasterRCNNImageProcessor"})
    )
    with pytest.raises(FasterRCNNHubError, match="names image_processor_type"):
        upload_plan(named_processor)

    # What transformers' own save_pretrained wrote before this package saved the code: weights and config only.
    no_code = _broken(source, tmp_path, "no-code")
    for path in no_code.glob("*.py"):
        path.unlink()
    config = _json(no_code / "config.json")
    del config["auto_map"]
    (no_code / "config.json").write_text(json.dumps(config))
    problems = remote_loading_problems(no_code)
    assert problems == [f"config.json has no auto_map entry for {auto_class} (expected '{reference}')"
                        for auto_class, reference in EXPECTED_AUTO_MAP.items()]  # fmt: skip

    # An entry module that reaches a module only through another: transformers 4.57 and 5.0 would not copy it.
    indirect = _broken(source, tmp_path, "indirect")
    modeling = indirect / "modeling_faster_rcnn.py"
    modeling.write_text(modeling.read_text().replace("from .nms import batched_nms  # noqa: F401\n", ""))
    [problem] = remote_loading_problems(indirect)
    assert re.fullmatch(
        r"modeling_faster_rcnn\.py imports nms\.py only through (rpn|roi_heads)\.py, so transformers 4\.57 and 5\.0 "
        r"would not copy it",
        problem,
    ), problem


RESAVE_WITHOUT_THE_PACKAGE = """
import json, sys
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForObjectDetection

source, target, image_path = sys.argv[1:]
model = AutoModelForObjectDetection.from_pretrained(source, trust_remote_code=True).eval()
AutoImageProcessor.from_pretrained(source, trust_remote_code=True).save_pretrained(target)
model.save_pretrained(target)
model = AutoModelForObjectDetection.from_pretrained(target, trust_remote_code=True).eval()
processor = AutoImageProcessor.from_pretrained(target, trust_remote_code=True)
with torch.no_grad():
    outputs = model(**processor(images=[Image.open(image_path)]))
print(json.dumps(processor.post_process_object_detection(outputs, threshold=0.0)[0]["scores"].tolist()))
"""


def test_a_folder_saved_again_by_its_remote_code_carries_the_code(converted_model, tmp_path):
    source = Path(shutil.copytree(converted_model(TINY), tmp_path / "source"))
    settings = _json(source / "preprocessor_config.json")
    settings["size"] = {"longest_edge": 320, "shortest_edge": 192}
    (source / "preprocessor_config.json").write_text(json.dumps(settings))
    script = tmp_path / "resave.py"
    script.write_text(RESAVE_WITHOUT_THE_PACKAGE)
    target = tmp_path / "resaved"
    done = run_isolated(script, str(source), str(target), str(IMAGES / "chelsea.png"), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _code_in(target) == CODE_NAMES and remote_loading_problems(target) == []
    model = FasterRCNNForObjectDetection.from_pretrained(source).eval()
    processor = FasterRCNNImageProcessor.from_pretrained(source)
    with torch.no_grad():
        outputs = model(**processor(images=[Image.open(IMAGES / "chelsea.png")]))
    expected = processor.post_process_object_detection(outputs, threshold=0.0)[0]["scores"].tolist()
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected
