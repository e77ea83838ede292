"""`faster-rcnn-hub convert NAME`: download into the cache, resume, SHA-256 check, then convert.

A thread serves the tiny fixture checkpoint (stripped of its embedded config) on 127.0.0.1, and a matching entry
is added to the model-zoo table; nothing leaves the machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from faster_rcnn_hub.cli import main
from faster_rcnn_hub.conversion import convert_checkpoint
from faster_rcnn_hub.zoo.download import ChecksumMismatchError, default_cache_dir, download_checkpoint
from zoo_fixtures import (
    TINY_CASCADE,
    TINY_COCO,
    CheckpointServer,
    add_to_zoo_table,
    cached_files,
    TINY_MASK,
    tiny_cascade_zoo_checkpoint,
    tiny_mask_zoo_checkpoint,
    tiny_zoo_checkpoint,
)


@pytest.fixture(scope="module")
def tiny_zoo():
    return tiny_zoo_checkpoint()


@pytest.fixture
def served(tiny_zoo, monkeypatch):
    """(server, entry): the checkpoint on a local server and its entry in the zoo table."""
    filename, data, entry = tiny_zoo
    with CheckpointServer({filename: data}) as server:
        entry = dataclasses.replace(entry, url=server.url(filename))
        add_to_zoo_table(monkeypatch, entry)
        yield server, entry


def test_convert_by_name_downloads_verifies_and_converts_with_the_table_config(served, tmp_path, capsys):
    server, entry = served
    cache = tmp_path / "cache"
    assert main(["convert", entry.name, str(tmp_path / "model"), "--cache-dir", str(cache)]) == 0
    assert "80 classes" in capsys.readouterr().out
    assert cached_files(cache) == [entry.filename]
    assert server.requests == [(f"/{entry.filename}", None)]

    # The checkpoint has no config of its own: the table's config built the model, and the source is recorded.
    source = json.loads((tmp_path / "model" / "config.json").read_text())["source"]
    assert source["model_zoo_name"] == entry.name and source["url"] == entry.url
    assert source["sha256"].startswith(entry.sha256_prefix)
    assert source["config"].startswith(entry.config_file)
    card = (tmp_path / "model" / "README.md").read_text()
    assert "12.3" in card and entry.url in card
    # Same weights as converting the original fixture (which carries its config) directly.
    direct = convert_checkpoint(TINY_COCO, tmp_path / "direct")
    converted = load_file(str(tmp_path / "model" / "model.safetensors"))
    reference = load_file(str(direct.output_dir / "model.safetensors"))
    assert converted.keys() == reference.keys()
    assert all(torch.equal(converted[key], reference[key]) for key in reference)

    # A second conversion uses the cached file: no new request.
    assert main(["convert", entry.name, str(tmp_path / "again"), "--cache-dir", str(cache)]) == 0
    assert len(server.requests) == 1


def test_a_cascade_rcnn_entry_converts_by_name_from_the_tables_config(converted_model, monkeypatch, tmp_path, capsys):
    """The table's reduced config (training settings dropped but the stages' IoU thresholds) converts a Cascade
    R-CNN checkpoint exactly as its own full config does."""
    filename, data, entry = tiny_cascade_zoo_checkpoint(tmp_path)
    assert "train_cfg" in entry.mmdet_config["model"]  # only the cascade stages' thresholds are kept
    with CheckpointServer({filename: data}) as server:
        entry = dataclasses.replace(entry, url=server.url(filename))
        add_to_zoo_table(monkeypatch, entry)
        assert main(["zoo"]) == 0
        listed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(entry.name))
        assert listed.endswith("yes")
        assert main(["convert", entry.name, str(tmp_path / "model"), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert server.requests == [(f"/{filename}", None)]

    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["source"]["model_zoo_name"] == entry.name
    stages = config["cascade_stages"]
    assert [(stage["iou_threshold"], stage["loss_weight"]) for stage in stages] == [(0.5, 1.0), (0.6, 0.5), (0.7, 0.25)]
    # Same settings and weights as converting the checkpoint with its embedded config (test_cascade.py's model).
    direct = converted_model(TINY_CASCADE)
    assert json.loads((direct / "config.json").read_text())["cascade_stages"] == stages
    converted = load_file(str(tmp_path / "model" / "model.safetensors"))
    reference = load_file(str(direct / "model.safetensors"))
    assert converted.keys() == reference.keys() and any(key.startswith("roi_heads.stages.2.") for key in reference)
    assert all(torch.equal(converted[key], reference[key]) for key in reference)


def test_a_mask_rcnn_entry_converts_by_name_from_the_tables_config(converted_model, monkeypatch, tmp_path):
    """The table's reduced config converts a Mask R-CNN checkpoint exactly as its own full config does: the same
    `mask_head` and bit-identical weights, mask head included."""
    filename, data, entry = tiny_mask_zoo_checkpoint(tmp_path)
    with CheckpointServer({filename: data}) as server:
        entry = dataclasses.replace(entry, url=server.url(filename))
        add_to_zoo_table(monkeypatch, entry)
        assert main(["convert", entry.name, str(tmp_path / "model"), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert server.requests == [(f"/{filename}", None)]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["source"]["model_zoo_name"] == entry.name
    direct = converted_model(TINY_MASK)
    assert config["mask_head"] == json.loads((direct / "config.json").read_text())["mask_head"]
    assert config["mask_head"]["conv_channels"] == 32
    converted = load_file(str(tmp_path / "model" / "model.safetensors"))
    reference = load_file(str(direct / "model.safetensors"))
    assert converted.keys() == reference.keys() and any(key.startswith("roi_heads.mask_head.") for key in reference)
    assert all(torch.equal(converted[key], reference[key]) for key in reference)


def test_interrupted_download_resumes_from_the_partial_file_with_a_range_request(served, tmp_path, capsys):
    server, entry = served
    cache = tmp_path / "cache"
    size = len(server.files[entry.filename])
    server.drop_after = size // 3
    assert main(["convert", entry.name, str(tmp_path / "model"), "--cache-dir", str(cache)]) == 2
    error = capsys.readouterr().err
    assert "interrupted" in error and "run the same command again to resume" in error
    assert cached_files(cache) == [f"{entry.filename}.part"]
    assert (cache / "checkpoints" / f"{entry.filename}.part").stat().st_size == size // 3
    assert not (tmp_path / "model").exists()

    assert main(["convert", entry.name, str(tmp_path / "model"), "--cache-dir", str(cache)]) == 0
    assert server.requests[-1] == (f"/{entry.filename}", f"bytes={size // 3}-")
    assert cached_files(cache) == [entry.filename]
    cached = (cache / "checkpoints" / entry.filename).read_bytes()
    assert cached == server.files[entry.filename]
    assert (tmp_path / "model" / "model.safetensors").exists()


def test_corrupt_download_is_refused_and_nothing_of_the_users_is_touched(served, tmp_path, capsys):
    server, entry = served
    cache = tmp_path / "cache"
    good = server.files[entry.filename]
    server.files[entry.filename] = good[:-10] + bytes(10)  # same size, different bytes
    found = hashlib.sha256(server.files[entry.filename]).hexdigest()
    existing = tmp_path / "model"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")

    args = ["convert", entry.name, str(existing), "--cache-dir", str(cache), "--overwrite"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert entry.sha256_prefix in error and found in error  # what was expected and what was found
    assert sorted(path.name for path in existing.iterdir()) == ["notes.txt"]
    assert cached_files(cache) == [f"{entry.filename}.corrupt"]  # kept for inspection, not deleted

    # The next run downloads afresh (not resuming the bad file) and succeeds once the server is fixed.
    server.files[entry.filename] = good
    assert main(args) == 0
    assert server.requests[-1] == (f"/{entry.filename}", None)
    assert (existing / "model.safetensors").exists()


def test_a_corrupt_file_already_in_the_cache_is_reported_and_kept(tiny_zoo, tmp_path):
    filename, data, entry = tiny_zoo
    cached = tmp_path / "checkpoints" / filename
    cached.parent.mkdir()
    cached.write_bytes(b"not the checkpoint")
    with pytest.raises(ChecksumMismatchError, match=f"does not start with {entry.sha256_prefix}"):
        download_checkpoint("http://127.0.0.1:9/" + filename, entry.sha256_prefix, cache_dir=tmp_path, progress=False)
    assert cached.read_bytes() == b"not the checkpoint"


def test_an_entry_that_cannot_run_is_refused_before_downloading(tiny_zoo, monkeypatch, tmp_path, capsys):
    _, _, entry = tiny_zoo
    config = json.loads(json.dumps(entry.mmdet_config))
    config["model"]["backbone"]["type"] = "RegNet"
    unsupported = dataclasses.replace(entry, name="faster-rcnn_regnet_tiny", mmdet_config=config, url="http://127.0.0.1:9/x.pth")
    add_to_zoo_table(monkeypatch, unsupported)
    assert main(["convert", unsupported.name, str(tmp_path / "model"), "--cache-dir", str(tmp_path / "cache")]) == 2
    error = capsys.readouterr().err
    assert "cannot be converted yet" in error and "RegNet" in error
    assert not (tmp_path / "cache").exists() and not (tmp_path / "model").exists()


def test_cache_folder_follows_the_hugging_face_conventions(monkeypatch, tmp_path):
    for variable in ("FASTER_RCNN_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "huggingface" / "faster-rcnn-hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "huggingface" / "faster-rcnn-hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert default_cache_dir() == tmp_path / "hf" / "faster-rcnn-hub"
    monkeypatch.setenv("FASTER_RCNN_HUB_CACHE", str(tmp_path / "own"))
    assert default_cache_dir() == Path(tmp_path / "own")
