"""A converted folder as a Hub model repository: model card, remote code without the package, and upload."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.errors import LocalTokenNotFoundError
from huggingface_hub.repocard_data import eval_results_to_model_index
from PIL import Image

from conftest import IMAGES, MMDET
from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor
from faster_rcnn_hub.hub import upload as hub
from faster_rcnn_hub.cli import main
from faster_rcnn_hub.conversion import convert_checkpoint
from faster_rcnn_hub.hub import upload_plan
from isolated_python import REMOTE_DRIVER, run_isolated
from parity import assert_matches, compare_detections
from zoo_fixtures import tiny_zoo_checkpoint

TINY_VOC = MMDET / "tiny_r50_caffe_fpn_voc" / "tiny_r50_caffe_fpn_voc.pth"
REMOTE_IMAGES = ["chelsea.png", "wide_pattern.png", "tiny_noise.png"]


@pytest.fixture(scope="module")
def zoo_model(tmp_path_factory) -> tuple[Path, object]:
    """The tiny checkpoint converted as a model-zoo checkpoint (so its card has a box AP): (folder, entry)."""
    from faster_rcnn_hub.zoo import table as zoo

    folder = tmp_path_factory.mktemp("zoo-model")
    filename, data, entry = tiny_zoo_checkpoint()
    (folder / filename).write_bytes(data)
    with pytest.MonkeyPatch.context() as patch:
        table = {**zoo._load_table(), entry.name: entry}
        patch.setattr(zoo, "_load_table", lambda: table)
        result = convert_checkpoint(folder / filename, folder / "tiny-r50-fpn-coco")
    assert result.zoo_entry == entry
    return result.output_dir, entry


def test_model_card_metadata_passes_huggingface_hub_validation(zoo_model):
    folder, entry = zoo_model
    text = (folder / "README.md").read_text()
    card = ModelCard.load(folder / "README.md")  # parses and validates the metadata and model-index, offline
    data = card.data
    assert (data.library_name, data.pipeline_tag, data.license) == ("transformers", "object-detection", "apache-2.0")
    assert {"object-detection", "faster-rcnn", "mmdetection"} <= set(data.tags)
    assert data.datasets == ["coco"]
    [result] = data.eval_results
    assert (result.task_type, result.dataset_type, result.dataset_name) == ("object-detection", "coco", "COCO")
    assert (result.metric_type, result.metric_name, result.metric_value) == ("mAP", "box AP", 12.3)
    assert result.source_url == entry.config_url and data.model_name == entry.name

    # What the Hub reads back is exactly what was written.
    metadata = yaml.safe_load(text.split("---\n")[1])
    assert eval_results_to_model_index(data.model_name, data.eval_results) == metadata["model-index"]
    assert ModelCardData(**metadata).to_dict() == metadata
    # The same validation refuses a broken model-index, so the checks above can fail.
    with pytest.raises(ValueError, match="model_index"):
        ModelCard(text.replace("type: mAP", "kind: mAP"))

    source = json.loads((folder / "config.json").read_text())["source"]
    for expected in (entry.config_file, entry.url, source["sha256"], "| backbone | ResNet-50, pytorch style |",
                     "## Limitations", "80 classes: person, bicycle"):  # fmt: skip
        assert expected in card.text, expected


@pytest.mark.matrix
def test_card_usage_code_runs_as_written_without_the_package(zoo_model, tmp_path):
    folder, _ = zoo_model
    blocks = re.findall(r"```python\n(.*?)```", (folder / "README.md").read_text(), flags=re.DOTALL)
    assert len(blocks) == 1 and f'model_id = "{folder.name}"' in blocks[0]
    snippet = tmp_path / "snippet.py"
    snippet.write_text(blocks[0])
    done = run_isolated(snippet, cwd=folder.parent, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("[") >= 2  # the pipeline's results were printed
    assert "not supported for object-detection" not in done.stderr


# The model code converted folders carried before the package's layout changed (faster-rcnn-hub 0.1.0, flat
# modules): such folders must keep loading, with and without the package.
CODE_BEFORE_LAYOUT = Path(__file__).parent / "fixtures" / "remote_code_v0.1.0"


# The current code is also part of the fast job of the compatibility matrix; 0.1.0's needs transformers 5.
@pytest.mark.parametrize("code", [pytest.param("current", marks=pytest.mark.matrix), "v0.1.0"])
def test_folder_loads_as_remote_code_where_the_package_is_not_installed(zoo_model, tmp_path, code):
    folder = Path(shutil.copytree(zoo_model[0], tmp_path / "tiny-r50-fpn-coco"))
    if code == "v0.1.0":
        for path in folder.glob("*.py"):
            path.unlink()
        for path in CODE_BEFORE_LAYOUT.glob("*.py"):
            shutil.copyfile(path, folder / path.name)
    settings = json.loads((folder / "preprocessor_config.json").read_text())
    settings["size"] = {"longest_edge": 400, "shortest_edge": 240}
    (folder / "preprocessor_config.json").write_text(json.dumps(settings))
    driver = tmp_path / "driver.py"
    driver.write_text(REMOTE_DRIVER)
    paths = [str(IMAGES / name) for name in REMOTE_IMAGES]
    done = run_isolated(driver, str(folder), *paths, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])["folders"][str(folder)]

    # The package gives the same detections as the remote code's model, and the remote pipeline those too.
    model = FasterRCNNForObjectDetection.from_pretrained(folder).eval()
    processor = FasterRCNNImageProcessor.from_pretrained(folder)
    for index, path in enumerate(paths):
        with torch.no_grad():
            outputs = model(**processor(images=[Image.open(path)]))
        result = processor.post_process_object_detection(outputs, threshold=0.0)[0]
        theirs = remote["model"][index]
        comparison = compare_detections(
            result["boxes"], result["scores"].tolist(), result["labels"].tolist(),
            theirs["boxes"], theirs["scores"], theirs["labels"],
        )  # fmt: skip
        assert_matches(comparison, f"remote-code model on {path}")
        piped = remote["pipeline"][index]
        assert [item["label"] for item in piped] == [model.config.id2label[label] for label in theirs["labels"]]
        assert [item["score"] for item in piped] == theirs["scores"]
        boxes = [[item["box"][key] for key in ("xmin", "ymin", "xmax", "ymax")] for item in piped]
        assert boxes == [[int(value) for value in box] for box in theirs["boxes"]]


def _folder_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_push_dry_run_lists_exactly_what_would_be_uploaded(tmp_path, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise AssertionError("a dry run must not contact the Hub")

    monkeypatch.setattr(hub, "HfApi", no_network)
    output = tmp_path / "tiny-voc"
    assert main(["convert", str(TINY_VOC), str(output), "--push-to-hub", "me/tiny-voc", "--private", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "Dry run, nothing uploaded" in printed and "me/tiny-voc" in printed and "private" in printed
    listed = re.findall(r"^  (\S+)\s+[\d.]+ (?:B|KiB|MiB)$", printed, flags=re.MULTILINE)
    assert listed == _folder_files(output) == [file.path_in_repo for file in upload_plan(output)]
    assert f"{len(listed)} files" in printed
    # The card's usage code loads the repository it is pushed to.
    assert 'model_id = "me/tiny-voc"' in (output / "README.md").read_text()


class _RecordingHfApi:
    calls: list[tuple[str, tuple, dict]] = []
    fail_with: Exception | None = None

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))
        if self.fail_with is not None:
            raise self.fail_with

    def create_commit(self, *args, **kwargs):
        self.calls.append(("create_commit", args, kwargs))


def test_push_creates_the_repository_and_uploads_the_folder_in_one_commit(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_RecordingHfApi, "calls", [])
    monkeypatch.setattr(hub, "HfApi", _RecordingHfApi)
    output = tmp_path / "tiny-voc"
    assert main(["convert", str(TINY_VOC), str(output), "--push-to-hub", "me/tiny-voc", "--private"]) == 0
    assert "Uploaded" in capsys.readouterr().out
    (create, create_args, create_kwargs), (commit, commit_args, commit_kwargs) = _RecordingHfApi.calls
    assert create == "create_repo" and create_args == ("me/tiny-voc",)
    assert create_kwargs == {"private": True, "repo_type": "model", "exist_ok": True}
    assert commit == "create_commit" and commit_args == ("me/tiny-voc",)
    operations = commit_kwargs["operations"]
    assert [operation.path_in_repo for operation in operations] == _folder_files(output)
    for operation in operations:
        assert Path(operation.path_or_fileobj) == output / operation.path_in_repo


def test_failed_upload_says_how_to_fix_it_and_keeps_the_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_RecordingHfApi, "calls", [])
    monkeypatch.setattr(_RecordingHfApi, "fail_with", LocalTokenNotFoundError("Token is required"))
    monkeypatch.setattr(hub, "HfApi", _RecordingHfApi)
    output = tmp_path / "tiny-voc"
    assert main(["convert", str(TINY_VOC), str(output), "--push-to-hub", "me/tiny-voc"]) == 2
    error = capsys.readouterr().err
    assert "hf auth login" in error and "Traceback" not in error
    assert (output / "model.safetensors").exists()
    assert main(["convert", str(TINY_VOC), str(tmp_path / "other"), "--private"]) == 2
    assert "--push-to-hub" in capsys.readouterr().err
