"""Training through the model's forward: `labels` give mmdetection's losses; inference is unchanged."""

from __future__ import annotations

import pytest
import torch

from faster_rcnn_hub import FasterRCNNConfig, FasterRCNNForObjectDetection
from faster_rcnn_hub.errors import InvalidAnnotationError
from training_helpers import tiny_config

LOSS_NAMES = {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"}


def _batch():
    torch.manual_seed(0)
    pixel_values = torch.randn(2, 3, 96, 128)
    image_sizes = torch.tensor([[96, 128], [80, 100]])
    labels = [
        {"class_labels": torch.tensor([0, 3]), "boxes": torch.tensor([[10.0, 12.0, 40.0, 50.0], [60.0, 20.0, 100.0, 44.0]])},
        {"class_labels": torch.tensor([4]), "boxes": torch.tensor([[30.0, 30.0, 70.0, 60.0]])},
    ]
    return pixel_values, image_sizes, labels


def test_labels_give_the_four_losses_and_their_sum():
    torch.manual_seed(0)
    model = FasterRCNNForObjectDetection(tiny_config()).train()
    pixel_values, image_sizes, labels = _batch()
    torch.manual_seed(1)
    outputs = model(pixel_values=pixel_values, image_sizes=image_sizes, labels=labels)
    assert set(outputs.loss_dict) == LOSS_NAMES
    assert torch.allclose(outputs.loss, sum(outputs.loss_dict.values()))
    assert all(bool(torch.isfinite(value)) for value in outputs.loss_dict.values())
    # Freshly initialised heads (std 0.01): objectness near 0 (BCE ~ log 2) and near-uniform class scores
    # (CE ~ log 6); left at the generic Kaiming/Xavier initialisation they start near 11 and 7 instead.
    assert outputs.loss_dict["loss_rpn_cls"].item() == pytest.approx(0.693, abs=0.05)
    assert outputs.loss_dict["loss_cls"].item() == pytest.approx(1.792, abs=0.2)
    assert outputs.pred_boxes is None  # training mode computes the losses only
    outputs.loss.backward()
    assert all(parameter.grad is not None for parameter in model.parameters())


def test_frozen_stages_and_frozen_batchnorm_do_not_learn():
    config = tiny_config(backbone_frozen_stages=1, backbone_norm_eval=True)
    model = FasterRCNNForObjectDetection(config).train()
    frozen = [model.backbone.stem, model.backbone.stages[0]]
    assert all(not parameter.requires_grad for module in frozen for parameter in module.parameters())
    norms = [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    statistics = [norm.running_mean.clone() for norm in norms]
    pixel_values, image_sizes, labels = _batch()
    model(pixel_values=pixel_values, image_sizes=image_sizes, labels=labels).loss.backward()
    assert all(parameter.grad is None for module in frozen for parameter in module.parameters())
    assert model.backbone.stages[1][0].conv1.weight.grad is not None
    assert all(torch.equal(norm.running_mean, before) for norm, before in zip(norms, statistics))


def test_eval_mode_with_labels_returns_losses_and_unchanged_detections():
    model = FasterRCNNForObjectDetection(tiny_config(rcnn_score_threshold=0.0)).eval()
    pixel_values, image_sizes, labels = _batch()
    with torch.no_grad():
        plain = model(pixel_values=pixel_values, image_sizes=image_sizes)
        with_loss = model(pixel_values=pixel_values, image_sizes=image_sizes, labels=labels)
    assert set(with_loss.loss_dict) == LOSS_NAMES and plain.loss is None and plain.loss_dict is None
    for key in ("pred_boxes", "scores", "labels", "num_detections", "proposals"):
        assert torch.equal(plain[key], with_loss[key]), key


def test_training_mode_without_labels_still_detects():
    model = FasterRCNNForObjectDetection(tiny_config()).train()
    pixel_values, image_sizes, _ = _batch()
    outputs = model(pixel_values=pixel_values, image_sizes=image_sizes)
    assert outputs.loss is None and outputs.pred_boxes.shape[0] == 2


def test_images_without_objects_are_pure_background():
    model = FasterRCNNForObjectDetection(tiny_config()).train()
    pixel_values, image_sizes, _ = _batch()
    empty = [{"class_labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)}] * 2
    outputs = model(pixel_values=pixel_values, image_sizes=image_sizes, labels=empty)
    assert outputs.loss_dict["loss_rpn_bbox"].item() == 0 and outputs.loss_dict["loss_bbox"].item() == 0
    assert outputs.loss_dict["loss_rpn_cls"].item() > 0
    outputs.loss.backward()


@pytest.mark.parametrize(
    "labels,message",
    [
        ({"class_labels": [0], "boxes": [[0, 0, 5, 5]]}, "list with one"),
        ([{"class_labels": torch.tensor([0]), "boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]])}], "2 images"),
        ([{"boxes": torch.zeros(0, 4)}] * 2, "'class_labels' and 'boxes'"),
        ([{"class_labels": torch.tensor([7]), "boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]])}] * 2, r"\[0, 4\]"),
        ([{"class_labels": torch.tensor([1]), "boxes": torch.tensor([[5.0, 0.0, 5.0, 5.0]])}] * 2, "x2 <= x1"),
        ([{"class_labels": torch.tensor([1, 2]), "boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]])}] * 2, "shape"),
        ([{"class_labels": torch.tensor([1.0]), "boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]])}] * 2, "integers"),
    ],
)
def test_bad_labels_are_refused_with_a_clear_message(labels, message):
    model = FasterRCNNForObjectDetection(tiny_config()).train()
    with pytest.raises(InvalidAnnotationError, match=message):
        model(pixel_values=torch.zeros(2, 3, 64, 64), labels=labels)


def test_new_models_get_mmdetections_initialisation():
    config = FasterRCNNConfig(backbone_depth=18, backbone_base_channels=8, fpn_out_channels=32, rpn_feat_channels=32,
                              box_head_fc_channels=64, num_classes=3)  # fmt: skip
    model = FasterRCNNForObjectDetection(config)
    head = model.rpn.head
    for conv in (head.conv, head.objectness, head.box_deltas):
        assert conv.weight.std().item() == pytest.approx(0.01, rel=0.2) and conv.bias.abs().sum() == 0
    assert model.roi_heads.box_predictor.cls_score.weight.std().item() == pytest.approx(0.01, rel=0.2)
    assert model.roi_heads.box_predictor.bbox_pred.weight.std().item() == pytest.approx(0.001, rel=0.2)
    lateral = model.fpn.lateral_convs[0].weight  # Xavier-uniform: bound sqrt(6 / (fan_in + fan_out))
    assert lateral.abs().max().item() <= (6 / (lateral.shape[1] + lateral.shape[0])) ** 0.5
    # zero_init_residual: each residual block starts as the identity.
    assert all(block.bn2.weight.abs().sum() == 0 for stage in model.backbone.stages for block in stage)
