"""The demo's default real-photo model: mmdetection's COCO model converted from the zoo on first start (a local
HTTP server plays the zoo, serving the tiny fixture checkpoint under the real model's name), the Hub ids of
FASTER_RCNN_HUB_MODELS, and nothing fetched offline."""

from __future__ import annotations

import dataclasses
import json

import pytest
from zoo_fixtures import CheckpointServer, add_to_zoo_table, tiny_zoo_checkpoint

from faster_rcnn_hub.demo import create_demo
from faster_rcnn_hub.demo.online_default import ONLINE_DEFAULT_MODEL, default_photo_models


@pytest.fixture
def online(monkeypatch, tmp_path):
    """(server, cache folder): the zoo's `faster-rcnn_r50_fpn_1x_coco` served from 127.0.0.1, and a machine
    that is online with an empty cache and no FASTER_RCNN_HUB_MODELS."""
    filename, data, entry = tiny_zoo_checkpoint()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("FASTER_RCNN_HUB_MODELS", raising=False)
    monkeypatch.setenv("FASTER_RCNN_HUB_CACHE", str(tmp_path / "cache"))
    with CheckpointServer({filename: data}) as server:
        add_to_zoo_table(monkeypatch, dataclasses.replace(entry, name=ONLINE_DEFAULT_MODEL, url=server.url(filename)))
        yield server, tmp_path / "cache"


def test_first_start_online_converts_the_zoo_coco_model_once_and_serves_it_first(online, capsys, monkeypatch):
    server, cache = online
    folder = cache / "demo-models" / ONLINE_DEFAULT_MODEL
    assert default_photo_models() == [str(folder)]
    assert len(server.requests) == 1
    source = json.loads((folder / "config.json").read_text())["source"]
    assert source["model_zoo_name"] == ONLINE_DEFAULT_MODEL and source["url"].startswith("http://127.0.0.1")
    log = capsys.readouterr().err
    assert f"First start: converting {ONLINE_DEFAULT_MODEL} from mmdetection's model zoo" in log
    assert "100%" in log  # the download's progress bar

    # A restart reuses the converted folder: nothing is downloaded again. The page serves it first.
    demo = create_demo(device="cpu")
    assert len(server.requests) == 1
    assert f"Serving {ONLINE_DEFAULT_MODEL} converted earlier" in capsys.readouterr().err
    config = demo.get_config_file()
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"] if c["props"].get("elem_id")}
    assert props["model"]["value"] == ONLINE_DEFAULT_MODEL
    assert f"**Real-photo models:** {ONLINE_DEFAULT_MODEL}" in props["models-overview"]["value"]
    assert props["photo-examples"]["visible"] and not props["shapes-examples"]["visible"]

    # FASTER_RCNN_HUB_MODELS replaces the zoo model; offline, nothing is fetched.
    monkeypatch.setenv("FASTER_RCNN_HUB_MODELS", "someone/coco-model  other/model")
    assert default_photo_models() == ["someone/coco-model", "other/model"]
    monkeypatch.delenv("FASTER_RCNN_HUB_MODELS")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert default_photo_models(cache_dir=cache.parent / "empty-cache") == []
    assert len(server.requests) == 1


def test_a_failed_download_leaves_the_demo_with_the_models_it_has(online, capsys):
    server, cache = online
    server.files.clear()  # the zoo answers 404
    assert default_photo_models() == []
    assert "Could not get faster-rcnn_r50_fpn_1x_coco, so no real-photo model is served" in capsys.readouterr().err
    assert not (cache / "demo-models" / ONLINE_DEFAULT_MODEL).exists()
