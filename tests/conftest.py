"""Shared fixtures: converted copies of the mmdetection reference models, built once per test session."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MMDET = FIXTURES / "mmdet"
IMAGES = FIXTURES / "images"
MANIFESTS = FIXTURES / "manifests"

# case -> test scale folder under fixtures/resized
CASE_SCALES = {
    "tiny_r50_fpn_coco": "1333x800",
    "tiny_r50_caffe_fpn_voc": "1000x600",
    "tiny_cascade_r50_fpn_coco": "1333x800",
    "tiny_mask_r50_fpn_coco": "1333x800",
    "r50_fpn_1x_coco": "1333x800",
    "r50_caffe_c4_1x_coco": "1333x800",
    "r50_caffe_dc5_1x_coco": "1333x800",
    "r50_fpn_soft_nms_1x_coco": "1333x800",
    "r18_fpn_lsj_coco": "1333x800",
    "x101_32x8d_fpn_ms_3x_coco": "1333x800",
    "r50_fpn_1x_cityscapes": "2048x1024",
    "cascade_r50_fpn_1x_coco": "1333x800",
    "mask_r50_fpn_1x_coco": "1333x800",
}


def load_manifest(name: str) -> dict:
    """A model-zoo configuration's state-dict manifest (`fixtures/manifests/NAME.json`)."""
    return json.loads((MANIFESTS / f"{name}.json").read_text())


def assert_manifest_keys_fill_the_model(manifest: dict, config) -> dict[str, tuple[int, ...]]:
    """Every checkpoint key of `manifest` has a renaming rule, and the renamed keys are exactly the keys of the
    model `config` builds, shape for shape (the model is built on the meta device: no weights are made). Returns
    the model's shapes."""
    from faster_rcnn_hub import FasterRCNNForObjectDetection
    from faster_rcnn_hub.conversion import rename_key

    with torch.device("meta"):
        shapes = {key: tuple(value.shape) for key, value in FasterRCNNForObjectDetection(config).state_dict().items()}
    renamed = {rename_key(key): tuple(shape) for key, shape in manifest["keys"]}
    assert None not in renamed, "a checkpoint key has no rule"
    assert renamed == shapes
    return shapes


def case_images(case: str) -> list[str]:
    return sorted(path.stem for path in (MMDET / case).glob("*.json") if path.name != "manifest.json")


def reference(case: str, image: str) -> dict:
    return json.loads((MMDET / case / f"{image}.json").read_text())


def resized_image_path(case: str, image: str) -> Path:
    return FIXTURES / "resized" / CASE_SCALES[case] / f"{image}.png"


def _seeded_weights_module():
    spec = importlib.util.spec_from_file_location("seeded_weights", FIXTURES / "seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_seeded_checkpoint(manifest: dict, path: Path, seed: int, meta: dict | None = None) -> Path:
    """A checkpoint in mmdetection's file format with the fixtures' deterministic weights."""
    seeded = _seeded_weights_module()
    torch.save({"meta": meta if meta is not None else {}, "state_dict": seeded.seeded_state_dict(manifest, seed)}, path)
    return path


def checkpoint_path(case: str, folder: Path) -> Path:
    """The case's checkpoint: shipped for tiny cases, rebuilt from the manifest (seed, meta) otherwise."""
    shipped = MMDET / case / f"{case}.pth"
    if shipped.exists():
        return shipped
    manifest = json.loads((MMDET / case / "manifest.json").read_text())
    meta = manifest.get("meta", {})
    if "CLASSES" in meta:
        meta["CLASSES"] = tuple(meta["CLASSES"])
    return write_seeded_checkpoint(manifest, folder / f"{case}.pth", manifest["seed"], meta)


@pytest.fixture(scope="session")
def converted_model(tmp_path_factory):
    """`converted_model(case)` -> folder of the case's converted model (converted once per session)."""
    from faster_rcnn_hub.conversion import convert_checkpoint

    cache: dict[str, Path] = {}

    def get(case: str) -> Path:
        if case not in cache:
            folder = tmp_path_factory.mktemp(case)
            checkpoint = checkpoint_path(case, folder)
            convert_checkpoint(checkpoint, folder / "model")
            if checkpoint.parent == folder:
                checkpoint.unlink()  # the rebuilt full-size checkpoint is no longer needed
            cache[case] = folder / "model"
        return cache[case]

    return get


@pytest.fixture(scope="session")
def loaded_model(converted_model):
    """`loaded_model(case)` -> (model in eval mode, processor), loaded once per session."""
    from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor

    cache: dict[str, tuple] = {}

    def get(case: str):
        if case not in cache:
            folder = converted_model(case)
            cache[case] = (
                FasterRCNNForObjectDetection.from_pretrained(folder).eval(),
                FasterRCNNImageProcessor.from_pretrained(folder),
            )
        return cache[case]

    return get


def dataset_type_of(manifest: dict) -> str:
    config_name = manifest["config"]
    if config_name.startswith("cityscapes/"):
        return "CityscapesDataset"
    if config_name.startswith("pascal_voc/"):
        return "VOCDataset"
    return "CocoDataset"


def write_manifest_config(manifest: dict, path: Path) -> Path:
    """An mmdetection 3.x config file (plain Python) holding the manifest's resolved model and test pipeline."""
    dataset = {"type": dataset_type_of(manifest), "pipeline": manifest["test_pipeline"], "test_mode": True}
    path.write_text(
        f"model = {manifest['model_cfg']!r}\n"
        f"test_pipeline = {manifest['test_pipeline']!r}\n"
        f"test_dataloader = dict(batch_size=1, dataset={dataset!r})\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def onnx_export(converted_model, tmp_path_factory):
    """`onnx_export(case)` -> export folder of the case's converted model (`faster_rcnn_hub.export`, once per
    session)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from faster_rcnn_hub import export

    cache: dict[str, Path] = {}

    def get(case: str) -> Path:
        if case not in cache:
            cache[case] = export(converted_model(case), tmp_path_factory.mktemp(f"{case}-onnx") / "export")
        return cache[case]

    return get


@pytest.fixture(scope="session")
def default_model_exports(tmp_path_factory):
    """The bundled default model exported to ONNX in float32 and in INT8 (calibrated on 8 images of the training
    seed), and 6 images of the held-out seed to run them on: `{"float32": folder, "int8": folder, "images": paths,
    "held_out": their data set folder}`."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from faster_rcnn_hub import export
    from faster_rcnn_hub.data.synthetic import write_dataset
    from faster_rcnn_hub.training.default_recipe import HELD_OUT_SEED, TRAIN_SEED

    work = tmp_path_factory.mktemp("default-model-exports")
    training = write_dataset(work / "train", 8, TRAIN_SEED)
    held_out = write_dataset(work / "held-out", 6, HELD_OUT_SEED)
    return {
        "float32": export(None, work / "float32"),
        "int8": export(None, work / "int8", quantize="int8", calibration_images=training / "images"),
        "images": sorted((held_out / "images").iterdir()),
        "held_out": held_out,
    }
