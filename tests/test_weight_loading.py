"""Loading a model folder is strict: a weights file that does not fit the config is an error naming the tensor,
never a model with a randomly initialised layer that detects nonsense."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import pipeline

from faster_rcnn_hub import FasterRCNNForObjectDetection
from faster_rcnn_hub.default_model import default_model_dir
from faster_rcnn_hub.errors import WeightsMismatchError

CLASS_SCORES = "roi_heads.box_predictor.cls_score.weight"
CLASS_BIAS = "roi_heads.box_predictor.cls_score.bias"


def damaged_folder(tmp_path, damage) -> str:
    """A copy of the bundled model whose model.safetensors went through `damage(tensors)`."""
    folder = tmp_path / "model"
    shutil.copytree(default_model_dir(), folder)
    tensors = load_file(folder / "model.safetensors")
    damage(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return str(folder)


def drop_class_scores(tensors):
    del tensors[CLASS_SCORES]


def add_a_tensor(tensors):
    tensors["roi_heads.box_predictor.extra_layer.weight"] = torch.zeros(3)


def grow_class_bias(tensors):
    tensors[CLASS_BIAS] = torch.zeros(tensors[CLASS_BIAS].numel() + 1)


@pytest.mark.parametrize(
    "damage,named",
    [
        (drop_class_scores, f"missing tensors (the model would initialise them at random): {CLASS_SCORES}"),
        (add_a_tensor, "tensors the model has no place for: roi_heads.box_predictor.extra_layer.weight"),
        (grow_class_bias, f"tensors of the wrong shape: {CLASS_BIAS} (checkpoint (7,), model (6,))"),
    ],
    ids=["missing", "unexpected", "mismatched"],
)
def test_a_weights_file_that_does_not_fit_is_an_error_naming_the_tensor(tmp_path, damage, named):
    folder = damaged_folder(tmp_path, damage)
    with pytest.raises(WeightsMismatchError) as raised:
        FasterRCNNForObjectDetection.from_pretrained(folder)
    assert named in str(raised.value) and folder in str(raised.value)
    # The pipeline tries each model class it knows and reports every class's error in one ValueError.
    with pytest.raises(ValueError, match=re.escape(named)):
        pipeline("object-detection", model=folder)


def test_mismatched_shapes_load_only_when_asked_and_missing_tensors_never(tmp_path):
    folder = damaged_folder(tmp_path, grow_class_bias)
    model, info = FasterRCNNForObjectDetection.from_pretrained(
        folder, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert CLASS_BIAS in str(info["mismatched_keys"]) and model.roi_heads.box_predictor.cls_score.bias.numel() == 6
    missing = damaged_folder(tmp_path / "missing", drop_class_scores)
    with pytest.raises(WeightsMismatchError, match=CLASS_SCORES):
        FasterRCNNForObjectDetection.from_pretrained(missing, ignore_mismatched_sizes=True)


def test_a_complete_folder_loads_every_tensor_from_the_file():
    model, info = FasterRCNNForObjectDetection.from_pretrained(default_model_dir(), output_loading_info=True)
    tensors = load_file(default_model_dir() / "model.safetensors")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert all(torch.equal(value, tensors[key]) for key, value in model.state_dict().items())
