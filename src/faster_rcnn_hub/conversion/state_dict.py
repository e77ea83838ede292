"""Renaming an mmdetection Faster R-CNN state dict to this package's module names, with strict checks."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ..errors import CheckpointError

# (mmdetection key pattern, our key template). Patterns are anchored; every source key must match one.
KEY_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"backbone\.conv1\.(weight)"), r"backbone.stem.conv.\1"),
    (re.compile(r"backbone\.bn1\.(\w+)"), r"backbone.stem.norm.\1"),
    (
        re.compile(r"backbone\.layer(\d+)\.(\d+)\.downsample\.0\.(weight)"),
        lambda match: f"backbone.stages.{int(match[1]) - 1}.{match[2]}.shortcut.conv.{match[3]}",
    ),
    (
        re.compile(r"backbone\.layer(\d+)\.(\d+)\.downsample\.1\.(\w+)"),
        lambda match: f"backbone.stages.{int(match[1]) - 1}.{match[2]}.shortcut.norm.{match[3]}",
    ),
    (
        re.compile(r"backbone\.layer(\d+)\.(\d+)\.((?:conv|bn)\d)\.(\w+)"),
        lambda match: f"backbone.stages.{int(match[1]) - 1}.{match[2]}.{match[3]}.{match[4]}",
    ),
    (re.compile(r"neck\.lateral_convs\.(\d+)\.conv\.(\w+)"), r"fpn.lateral_convs.\1.\2"),
    (re.compile(r"neck\.fpn_convs\.(\d+)\.conv\.(\w+)"), r"fpn.output_convs.\1.\2"),
    (re.compile(r"rpn_head\.rpn_conv\.(\w+)"), r"rpn.head.conv.\1"),
    (re.compile(r"rpn_head\.rpn_cls\.(\w+)"), r"rpn.head.objectness.\1"),
    (re.compile(r"rpn_head\.rpn_reg\.(\w+)"), r"rpn.head.box_deltas.\1"),
    # C4: the res5 stage mmdetection runs on every RoI (`ResLayer` shared head, stage 3 -> `layer4`), our
    # `SharedRes5Head.res5`.
    (
        re.compile(r"roi_head\.shared_head\.layer4\.(\d+)\.downsample\.0\.(weight)"),
        r"roi_heads.box_head.res5.\1.shortcut.conv.\2",
    ),
    (
        re.compile(r"roi_head\.shared_head\.layer4\.(\d+)\.downsample\.1\.(\w+)"),
        r"roi_heads.box_head.res5.\1.shortcut.norm.\2",
    ),
    (
        re.compile(r"roi_head\.shared_head\.layer4\.(\d+)\.((?:conv|bn)\d)\.(\w+)"),
        r"roi_heads.box_head.res5.\1.\2.\3",
    ),
    # Cascade R-CNN: mmdetection's `bbox_head.<stage>`, our `stages.<stage>`.
    (re.compile(r"roi_head\.bbox_head\.(\d+)\.shared_fcs\.(\d+)\.(\w+)"), r"roi_heads.stages.\1.box_head.fcs.\2.\3"),
    (re.compile(r"roi_head\.bbox_head\.(\d+)\.fc_cls\.(\w+)"), r"roi_heads.stages.\1.box_predictor.cls_score.\2"),
    (re.compile(r"roi_head\.bbox_head\.(\d+)\.fc_reg\.(\w+)"), r"roi_heads.stages.\1.box_predictor.bbox_pred.\2"),
    # Cascade Mask R-CNN: mmdetection's `mask_head.<stage>`, our `stages.<stage>.mask_head`.
    (
        re.compile(r"roi_head\.mask_head\.(\d+)\.convs\.(\d+)\.conv\.(\w+)"),
        r"roi_heads.stages.\1.mask_head.convs.\2.\3",
    ),
    (
        re.compile(r"roi_head\.mask_head\.(\d+)\.(upsample|conv_logits)\.(\w+)"),
        r"roi_heads.stages.\1.mask_head.\2.\3",
    ),
    # Mask R-CNN: mmdetection's `FCNMaskHead` (`convs.N` are `ConvModule`s holding `conv`).
    (re.compile(r"roi_head\.mask_head\.convs\.(\d+)\.conv\.(\w+)"), r"roi_heads.mask_head.convs.\1.\2"),
    (re.compile(r"roi_head\.mask_head\.(upsample|conv_logits)\.(\w+)"), r"roi_heads.mask_head.\1.\2"),
    (re.compile(r"roi_head\.bbox_head\.shared_fcs\.(\d+)\.(\w+)"), r"roi_heads.box_head.fcs.\1.\2"),
    (re.compile(r"roi_head\.bbox_head\.fc_cls\.(\w+)"), r"roi_heads.box_predictor.cls_score.\1"),
    (re.compile(r"roi_head\.bbox_head\.fc_reg\.(\w+)"), r"roi_heads.box_predictor.bbox_pred.\1"),
]

# Keys some checkpoints carry that hold nothing the model needs (normalization is the processor's job).
IGNORED_KEYS = re.compile(r"data_preprocessor\.(mean|std)")


def rename_key(key: str) -> str | None:
    """Our name for an mmdetection state-dict key, or `None` when no rule knows it."""
    for pattern, template in KEY_RULES:
        match = pattern.fullmatch(key)
        if match:
            return template(match) if callable(template) else match.expand(template)
    return None


def convert_state_dict(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename `source` (an mmdetection state dict) onto the keys and shapes of `target` (our model's).

    Raises:
        CheckpointError: naming every source key no rule or no model key takes, every model key the checkpoint
            lacks, and every shape that does not fit.
    """
    converted: dict[str, torch.Tensor] = {}
    unused, mismatched = [], []
    for key, tensor in source.items():
        if IGNORED_KEYS.fullmatch(key):
            continue
        new_key = rename_key(key)
        if new_key is None or new_key not in target:
            unused.append(key)
            continue
        if not isinstance(tensor, torch.Tensor):
            mismatched.append(f"{key}: expected a tensor, found {type(tensor).__name__}")
            continue
        expected = tuple(target[new_key].shape)
        if tuple(tensor.shape) != expected:
            mismatched.append(f"{key}: checkpoint shape {tuple(tensor.shape)}, model expects {expected}")
            continue
        converted[new_key] = tensor.detach().to(target[new_key].dtype).contiguous()
    missing = [key for key in target if key not in converted]
    problems = []
    if mismatched:
        problems.append("shapes that do not fit the architecture:\n  " + "\n  ".join(mismatched))
    if unused:
        problems.append("checkpoint keys the architecture has no place for:\n  " + "\n  ".join(unused))
    if missing:
        problems.append("model weights the checkpoint does not provide:\n  " + "\n  ".join(missing))
    if problems:
        raise CheckpointError(
            "The checkpoint does not match the architecture described by its config; "
            + "; ".join(problems)
            + "\nCheck that the config (embedded or given with --config) is the one the checkpoint was trained with."
        )
    return converted
