"""Faster R-CNN (ResNet/ResNeXt + FPN or a single C4/DC5 map + RPN + RoI head) as a transformers `PreTrainedModel`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

try:
    from transformers import initialization as init
except ImportError:
    # transformers 4.x has no initialisers that skip loaded weights; torch's are the same functions, and
    # from_pretrained loads the checkpoint's weights after initialising.
    from torch.nn import init

from .backbone import BasicBlock, Bottleneck, ResNetBackbone, freeze_backbone_stages
from .batching import check_padded_sizes, crop_to_batch_padding, group_by_padded_size, run_in_groups
from .cascade_roi_heads import CascadeRoIHeads
from .configuration_faster_rcnn import FasterRCNNConfig
from .errors import InvalidConfigError, InvalidImageError, NonFiniteFeaturesError, WeightsMismatchError
from .external_proposals import check_proposals
from .fpn import FeaturePyramidNetwork
from .fused_inference import FusedInferenceMixin, float32_precision_of_forward
from .roi_heads import BoxPredictor, RoIHeads
from .rpn import RegionProposalNetwork

# transformers 4.57 and 5.0 copy into their module cache only the files that an entry module (this one, the
# configuration and the image processor) imports directly, so every module the model needs, directly or not, is
# imported here too (tests/test_architecture.py checks it).
from .architecture import BLOCK_EXPANSION  # noqa: F401
from .boxes import DeltaXYWHBoxCoder  # noqa: F401
from .mask_head import FCNMaskHead  # noqa: F401
from .mask_pasting import paste_masks  # noqa: F401
from .nms import batched_nms  # noqa: F401
from .roi_align import MultiLevelRoIAlign  # noqa: F401
from .saving import write_model_code  # noqa: F401
from .shared_res5_head import SharedRes5Head  # noqa: F401
from .training_settings import TrainingSettings  # noqa: F401

# The training losses (anchor and RoI assignment, sampling, loss terms) are not part of the model code that a
# converted folder carries: the faster_rcnn_hub package installs them with `set_training_loss_function`. A forward
# with `labels` calls `function(model, pyramid, image_sizes, labels, proposals)` (`proposals`: the checked external
# proposals, or `None` for the RPN's), which returns an object with `loss` (the sum) and `loss_dict` (the terms
# under mmdetection's names).
TrainingLossFunction = Callable[
    ["FasterRCNNForObjectDetection", list[torch.Tensor], torch.Tensor, Any, "list[torch.Tensor] | None"], Any
]
_training_loss_function: TrainingLossFunction | None = None


def set_training_loss_function(function: TrainingLossFunction | None) -> None:
    """Install the function a forward with `labels` computes its losses with (`None` removes it)."""
    global _training_loss_function
    _training_loss_function = function


class _HideUnlistedModelError(logging.Filter):
    # `pipeline("object-detection")` logs an error for every model class missing from transformers' built-in
    # table, even for classes registered with the Auto classes or loaded as remote code, as this one is; the model
    # works, so that error would only mislead.
    def filter(self, record: logging.LogRecord) -> bool:
        return "'FasterRCNNForObjectDetection' is not supported for" not in record.getMessage()


def hide_unlisted_model_error() -> None:
    """Install the filter on transformers' pipeline logger (once, however often this is called)."""
    logger = logging.getLogger("transformers.pipelines.base")
    if not any(type(existing).__name__ == _HideUnlistedModelError.__name__ for existing in logger.filters):
        logger.addFilter(_HideUnlistedModelError())


@dataclass
class FasterRCNNObjectDetectionOutput(ModelOutput):
    r"""
    Output of [`FasterRCNNForObjectDetection`]: final detections per image, padded to
    `config.rcnn_max_per_img`, and the RPN proposals they came from.

    loss (`torch.Tensor`, *optional*):
        Total training loss, returned when `labels` are given: the sum of `loss_dict`.
    loss_dict (`dict[str, torch.Tensor]`, *optional*):
        The loss terms under mmdetection's names: `loss_rpn_cls`, `loss_rpn_bbox`, `loss_cls`, `loss_bbox`.
    pred_boxes (`torch.FloatTensor` of shape `(batch_size, max_detections, 4)`):
        Detected boxes as x1, y1, x2, y2 in pixels of the original (un-resized) image. Rows past
        `num_detections` are zeros.
    scores (`torch.FloatTensor` of shape `(batch_size, max_detections)`):
        Class probability of each detection, in decreasing order per image; zeros past `num_detections`.
    labels (`torch.LongTensor` of shape `(batch_size, max_detections)`):
        0-based class index into `config.id2label`; -1 past `num_detections`.
    num_detections (`torch.LongTensor` of shape `(batch_size,)`):
        How many rows of `pred_boxes`, `scores` and `labels` are real detections.
    proposals (`torch.FloatTensor` of shape `(batch_size, max_proposals, 4)`):
        RPN proposals as x1, y1, x2, y2 in resized-image pixels; zeros past `num_proposals`. `None` when the
        forward was given `proposals` (the caller has them).
    proposal_scores (`torch.FloatTensor` of shape `(batch_size, max_proposals)`):
        Objectness of each proposal; `None` with given `proposals`.
    num_proposals (`torch.LongTensor` of shape `(batch_size,)`):
        How many proposal rows are real (with given `proposals`: how many boxes the RoI head took per image).
    image_sizes (`torch.LongTensor` of shape `(batch_size, 2)`):
        `(height, width)` of each resized image inside the padded batch.
    original_sizes (`torch.LongTensor` of shape `(batch_size, 2)`):
        `(height, width)` of each image before resizing: the frame of `pred_boxes`.
    pred_masks (`torch.FloatTensor` of shape `(batch_size, max_detections, mask_size, mask_size)`, *optional*):
        Mask R-CNN only (`config.mask_head`): each detection's mask probabilities (the sigmoid of its own class's
        logits; for a Cascade Mask R-CNN the mean of its stages' sigmoids) over its box, at the mask head's low
        resolution (28x28); zeros past `num_detections`. `FasterRCNNImageProcessor.post_process_instance_segmentation`
        (or `paste_masks`) pastes them into the image.
    pred_mask_logits (`torch.FloatTensor` of shape `(batch_size, max_detections, mask_size, mask_size)`, *optional*):
        The logits `pred_masks` is the sigmoid of; zeros past `num_detections`. `None` for a Cascade Mask R-CNN,
        whose masks are the mean of its stages' mask probabilities.
    """

    loss: torch.Tensor | None = None
    loss_dict: dict[str, torch.Tensor] | None = None
    pred_boxes: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    num_detections: torch.Tensor | None = None
    proposals: torch.Tensor | None = None
    proposal_scores: torch.Tensor | None = None
    num_proposals: torch.Tensor | None = None
    image_sizes: torch.Tensor | None = None
    original_sizes: torch.Tensor | None = None
    pred_masks: torch.Tensor | None = None
    pred_mask_logits: torch.Tensor | None = None


def _tensor_names(entries: Any) -> list[str]:
    # transformers 4.x lists mismatched tensors as (name, checkpoint shape, model shape), 5.x as names or tuples.
    return sorted(str(entry[0]) if isinstance(entry, (tuple, list)) else str(entry) for entry in entries or ())


def _mismatch_descriptions(entries: Any) -> list[str]:
    descriptions = []
    for entry in entries or ():
        if isinstance(entry, (tuple, list)) and len(entry) >= 3:
            descriptions.append(f"{entry[0]} (checkpoint {tuple(entry[1])}, model {tuple(entry[2])})")
        else:
            descriptions.append(str(entry[0] if isinstance(entry, (tuple, list)) else entry))
    return sorted(descriptions)


def check_loaded_weights(loading_info: dict[str, Any], source: Any, allow_mismatched_sizes: bool = False) -> None:
    """Raise `WeightsMismatchError` naming every tensor the checkpoint lacks, has in excess, or has mis-shaped.

    Args:
        loading_info: `from_pretrained(..., output_loading_info=True)`'s second value.
        source: The folder or Hub id loaded, named in the message.
        allow_mismatched_sizes: Accept mis-shaped tensors (re-initialised on purpose for a new head).
    """
    problems = []
    missing = _tensor_names(loading_info.get("missing_keys"))
    unexpected = _tensor_names(loading_info.get("unexpected_keys"))
    mismatched = [] if allow_mismatched_sizes else _mismatch_descriptions(loading_info.get("mismatched_keys"))
    if missing:
        problems.append("missing tensors (the model would initialise them at random): " + ", ".join(missing))
    if unexpected:
        problems.append("tensors the model has no place for: " + ", ".join(unexpected))
    if mismatched:
        problems.append("tensors of the wrong shape: " + ", ".join(mismatched))
    if problems:
        raise WeightsMismatchError(
            f"The weights in {source} do not fit the model its config.json describes; "
            + "; ".join(problems)
            + ". The weights file is damaged or belongs to another model: convert the mmdetection checkpoint again "
            "(faster-rcnn-hub convert), or pass ignore_mismatched_sizes=True to re-initialise mis-shaped layers on "
            "purpose."
        )


class FasterRCNNPreTrainedModel(PreTrainedModel):
    config: FasterRCNNConfig
    config_class = FasterRCNNConfig
    # The detector is one model, not a base model wrapped by task heads: there is no prefix to strip or add.
    base_model_prefix = ""
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["Bottleneck", "BasicBlock"]

    def __init__(self, config: FasterRCNNConfig, *inputs: Any, **kwargs: Any) -> None:
        super().__init__(config, *inputs, **kwargs)
        # Installed when a model exists rather than on import: a pipeline builds the model before it checks it.
        hide_unlisted_model_error()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *model_args: Any, **kwargs: Any) -> Any:
        """transformers' `from_pretrained`, made strict: every weight of the model must come from the checkpoint.

        transformers initialises a missing tensor at random, ignores an extra one, and (with
        `ignore_mismatched_sizes=True`) re-initialises one of the wrong shape, and the model then detects
        nonsense without a word. Here each of these is an error naming the tensors. A shape mismatch is allowed
        only when the caller asks for it with `ignore_mismatched_sizes=True` (a new head for other classes).

        Raises:
            WeightsMismatchError: naming every missing, unexpected and mismatched tensor.
        """
        wants_loading_info = kwargs.pop("output_loading_info", False)
        allow_mismatched_sizes = bool(kwargs.pop("ignore_mismatched_sizes", False))
        # Mismatches are always collected (not raised inside transformers), so that every transformers release
        # reports them the same way: through the loading info, checked below.
        model, loading_info = super().from_pretrained(
            pretrained_model_name_or_path, *model_args, ignore_mismatched_sizes=True, output_loading_info=True, **kwargs
        )
        check_loaded_weights(loading_info, pretrained_model_name_or_path, allow_mismatched_sizes)
        return (model, loading_info) if wants_loading_info else model


    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # mmdetection's initialisation: Kaiming for the backbone, Xavier for the FPN, small normals for the
        # prediction layers.
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            # The mask head's deconvolution and logits too (mmdetection's `FCNMaskHead.init_weights`).
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            if getattr(module, "num_batches_tracked", None) is not None:
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            init.zeros_(module.bias)

    @torch.no_grad()
    def initialize_weights(self) -> None:
        super().initialize_weights()
        # transformers only initialises modules that own parameters directly, so the layers that mmdetection
        # initialises by role (FPN, RPN head, box predictor) are set here. Weights loaded from a checkpoint carry
        # transformers' "initialised" flag, which `init.*` respects, so they are left alone.
        for module in self.modules():
            if isinstance(module, (BasicBlock, Bottleneck)):
                # mmdetection's `zero_init_residual`: each residual block starts as the identity.
                init.zeros_((module.bn2 if isinstance(module, BasicBlock) else module.bn3).weight)
            elif isinstance(module, FeaturePyramidNetwork):
                for conv in [*module.lateral_convs, *module.output_convs]:
                    init.xavier_uniform_(conv.weight)
                    init.zeros_(conv.bias)
            elif isinstance(module, RegionProposalNetwork):
                for conv in (module.head.conv, module.head.objectness, module.head.box_deltas):
                    init.normal_(conv.weight, mean=0.0, std=0.01)
                    init.zeros_(conv.bias)
            elif isinstance(module, BoxPredictor):
                # Every box predictor: the single head's, or each cascade stage's.
                init.normal_(module.cls_score.weight, mean=0.0, std=0.01)
                init.normal_(module.bbox_pred.weight, mean=0.0, std=0.001)
                init.zeros_(module.cls_score.bias)
                init.zeros_(module.bbox_pred.bias)


class FasterRCNNForObjectDetection(FasterRCNNPreTrainedModel):
    """Faster R-CNN with a ResNet/ResNeXt backbone and FPN (or C4, DC5), computing what mmdetection computes.

    Example:

    ```python
    >>> import torch
    >>> from PIL import Image
    >>> from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor
    >>> model = FasterRCNNForObjectDetection.from_pretrained("path/to/converted").eval()
    >>> processor = FasterRCNNImageProcessor.from_pretrained("path/to/converted")
    >>> image = Image.open("image.jpg")
    >>> inputs = processor(images=[image], return_tensors="pt")
    >>> with torch.no_grad():
    ...     outputs = model(**inputs)
    >>> result = processor.post_process_object_detection(outputs, threshold=0.5)[0]
    ```
    """

    def __init__(self, config: FasterRCNNConfig) -> None:
        super().__init__(config)
        self.backbone = ResNetBackbone(config)
        if config.neck_type == "fpn":
            self.fpn = FeaturePyramidNetwork(config.backbone_out_channels, config.fpn_out_channels, config.fpn_num_outs)
        else:
            # Single-map models (C4, DC5): the backbone's one output goes straight to the RPN and the RoI head.
            self.fpn = nn.Identity()
        self.rpn = RegionProposalNetwork(config)
        self.roi_heads = CascadeRoIHeads(config) if config.cascade_stages is not None else RoIHeads(config)
        self.post_init()
        freeze_backbone_stages(self.backbone, config.backbone_frozen_stages)

    def train(self, mode: bool = True) -> FasterRCNNForObjectDetection:
        super().train(mode)
        if mode:
            # mmdetection's `frozen_stages`: the stem and the first stages neither learn nor update statistics.
            freeze_backbone_stages(self.backbone, self.config.backbone_frozen_stages)
        if mode and self.config.backbone_norm_eval:
            # mmdetection's `norm_eval`: BatchNorm statistics stay frozen while the rest trains.
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def enable_fused_inference(self, enabled: bool = True) -> FasterRCNNForObjectDetection:
        """Switch the fused inference path (see `fused_inference.py`) on (the default) or off.

        Fused, each convolution runs with its frozen BatchNorm folded in, channels-last, with its ReLU and residual
        addition in the same kernel, and RoIAlign gathers on all threads: same detections, to float32 rounding,
        in less time. Off, every layer runs as mmdetection's does. Training and gradient-tracking calls always
        take the unfused path.
        """
        for module in self.modules():
            if isinstance(module, FusedInferenceMixin):
                module.fuse_for_inference = enabled
        return self

    # Whether CUDA may run this model's float32 convolutions and matrix products in TF32 (see `enable_tf32`).
    allow_tf32: bool = False

    def enable_tf32(self, enabled: bool = True) -> FasterRCNNForObjectDetection:
        """Let CUDA run this model's float32 convolutions and matrix products in TF32 (off by default).

        TF32 keeps 10 of float32's 23 mantissa bits: on Ampere and later GPUs it is faster, and the network
        amplifies its rounding, which can move detections past mmdetection's tolerance. By default the model runs
        in true float32 whatever the process-wide switches say (cuDNN's allow TF32 by default), and puts those
        switches back when its forward returns; `enable_tf32()` makes it use TF32 the same way, for its forward
        only.
        """
        self.allow_tf32 = enabled
        return self

    @float32_precision_of_forward
    def forward(
        self,
        pixel_values: torch.Tensor,
        image_sizes: torch.Tensor | None = None,
        original_sizes: torch.Tensor | None = None,
        labels: list[dict[str, torch.Tensor]] | None = None,
        return_dict: bool | None = None,
        padded_sizes: torch.Tensor | None = None,
        proposals: list[torch.Tensor] | None = None,
        **kwargs,
    ) -> FasterRCNNObjectDetectionOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
                Normalized, padded images from [`FasterRCNNImageProcessor`].
            image_sizes (`torch.LongTensor` of shape `(batch_size, 2)`, *optional*):
                `(height, width)` of each resized image before padding. Defaults to the padded size.
            original_sizes (`torch.LongTensor` of shape `(batch_size, 2)`, *optional*):
                `(height, width)` of each image before resizing; detections are returned in these pixels.
                Defaults to `image_sizes`.
            padded_sizes (`torch.LongTensor` of shape `(batch_size, 2)`, *optional*):
                `(height, width)` each image is padded to on its own (a multiple of the processor's
                `pad_size_divisor`). When given, images of different padded sizes run in separate groups, each
                cropped to its padded size, so that every image gets the detections it gets alone.
            labels (`list[dict]`, *optional*):
                Ground truth for training, one dict per image: `class_labels` (`LongTensor` of shape `(n,)`, indices
                into `config.id2label`) and `boxes` (`FloatTensor` of shape `(n, 4)`, x1, y1, x2, y2 in pixels of the
                resized input, as [`FasterRCNNImageProcessor`] returns them for `annotations`). The output then holds
                `loss` and `loss_dict`, mmdetection's Faster R-CNN training losses (a Cascade R-CNN's: per stage,
                `s0.loss_cls`, `s0.loss_bbox`, ...; a Mask R-CNN's also `loss_mask`, for which each dict needs
                `masks`, a `(n, height, width)` 0/1 tensor of the objects' masks in the resized, padded input). In
                training mode nothing else is computed; in eval mode the detections are returned as well.
            proposals (`list[torch.FloatTensor]`, *optional*):
                Boxes for the RoI head from outside the model, one `(n_i, 4)` tensor per image: x1, y1, x2, y2 in
                pixels of the resized input (the frame of the output's `proposals`; [`FasterRCNNImageProcessor`]
                moves boxes given in original-image pixels there with its `proposals` argument). The RPN does not
                run: the RoI head classifies and refines these boxes, as mmdetection's Fast R-CNN does, and with
                `labels` only the second stage's losses (`loss_cls`, `loss_bbox`) are computed. Required when
                `config.proposal_source` is `"external"`.
        """
        if kwargs:
            raise TypeError(
                f"FasterRCNNForObjectDetection.forward() got unexpected arguments {sorted(kwargs)}; "
                "it takes pixel_values, image_sizes, original_sizes, padded_sizes, labels and proposals."
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        image_sizes, original_sizes = self._check_inputs(pixel_values, image_sizes, original_sizes)
        if proposals is not None:
            proposals = check_proposals(proposals, pixel_values.size(0), pixel_values.device)
        elif self.config.proposal_source == "external":
            raise InvalidConfigError(
                "This model is a Fast R-CNN trained on proposals from outside (config.proposal_source='external'); "
                "its RPN is untrained. Pass proposals=[(n, 4) boxes per image], e.g. selective search's "
                "(FasterRCNNImageProcessor(..., proposals=...) scales them to the input)."
            )
        if padded_sizes is not None:
            padded_sizes = check_padded_sizes(padded_sizes, image_sizes, pixel_values)
            if self.training or labels is not None:
                # Losses are computed as mmdetection trains (and validates): on the batch padded to its largest
                # image, so crop away the rest of the canvas.
                pixel_values = crop_to_batch_padding(pixel_values, padded_sizes)
            else:
                # At inference every image must see only its own padding (see batching.py).
                groups = group_by_padded_size(padded_sizes)
                if len(groups) > 1 or groups[0][0] != tuple(pixel_values.shape[-2:]):
                    output = run_in_groups(self.forward, groups, pixel_values, image_sizes, original_sizes, proposals)
                    return output if return_dict else output.to_tuple()

        # A model loaded or cast to bfloat16/float16 runs its network in that dtype; proposals, RoIAlign, box
        # decoding and NMS stay in float32 (see rpn.py and roi_heads.py), and so do the outputs.
        pyramid = self.fpn(self.backbone(pixel_values.to(self.dtype)))
        if not self.training:
            _check_finite_features(pyramid, self.dtype)
        losses = None
        if labels is not None:
            if _training_loss_function is None:
                raise ImportError(
                    "Training (forward with labels) needs the faster-rcnn-hub package, whose training losses this "
                    "copy of the model code does not carry: pip install faster-rcnn-hub, then load the model with "
                    "faster_rcnn_hub.FasterRCNNForObjectDetection."
                )
            losses = _training_loss_function(self, pyramid, image_sizes, labels, proposals)
            if self.training:
                output = FasterRCNNObjectDetectionOutput(
                    loss=losses.loss, loss_dict=losses.loss_dict, image_sizes=image_sizes, original_sizes=original_sizes
                )
                return output if return_dict else output.to_tuple()
        if proposals is None:
            rpn_proposals = self.rpn(pyramid, image_sizes)
            proposal_boxes = [proposal.boxes for proposal in rpn_proposals]
        else:
            rpn_proposals, proposal_boxes = None, proposals
        detections = self.roi_heads(pyramid, proposal_boxes, image_sizes, original_sizes)

        max_detections, max_proposals = self.config.rcnn_max_per_img, self.config.rpn_max_per_img
        pred_masks = pred_mask_logits = None
        if self.config.mask_head is not None:
            probabilities = [detection.mask_probabilities for detection in detections]
            pred_masks = _stack_padded(probabilities, max_detections, 0.0)
            if all(detection.mask_logits is not None for detection in detections):
                logits = [detection.mask_logits for detection in detections]
                pred_mask_logits = _stack_padded(logits, max_detections, 0.0)
        output = FasterRCNNObjectDetectionOutput(
            loss=losses.loss if losses is not None else None,
            loss_dict=losses.loss_dict if losses is not None else None,
            pred_boxes=_stack_padded([detection.boxes for detection in detections], max_detections, 0.0),
            scores=_stack_padded([detection.scores for detection in detections], max_detections, 0.0),
            labels=_stack_padded([detection.labels for detection in detections], max_detections, -1),
            num_detections=_counts([detection.scores for detection in detections]),
            proposals=None if rpn_proposals is None else _stack_padded(proposal_boxes, max_proposals, 0.0),
            proposal_scores=None
            if rpn_proposals is None
            else _stack_padded([proposal.scores for proposal in rpn_proposals], max_proposals, 0.0),
            num_proposals=_counts(proposal_boxes),
            image_sizes=image_sizes,
            original_sizes=original_sizes,
            pred_masks=pred_masks,
            pred_mask_logits=pred_mask_logits,
        )
        return output if return_dict else output.to_tuple()

    @staticmethod
    def _check_inputs(
        pixel_values: torch.Tensor, image_sizes: torch.Tensor | None, original_sizes: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4 or pixel_values.size(1) != 3:
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values)
            raise InvalidImageError(
                f"pixel_values must be a (batch, 3, height, width) tensor, got {shape}; "
                "prepare images with FasterRCNNImageProcessor."
            )
        if not pixel_values.is_floating_point():
            raise InvalidImageError(
                f"pixel_values must be floating point (normalized), got {pixel_values.dtype}; "
                "prepare images with FasterRCNNImageProcessor."
            )
        if pixel_values.size(0) == 0:
            raise InvalidImageError("pixel_values holds an empty batch; pass at least one image.")
        if not bool(torch.isfinite(pixel_values).all()):
            raise InvalidImageError("pixel_values contains NaN or infinite values.")
        batch, _, height, width = pixel_values.shape
        device = pixel_values.device
        if image_sizes is None:
            image_sizes = torch.tensor([[height, width]] * batch, dtype=torch.long, device=device)
        image_sizes = torch.as_tensor(image_sizes, device=device).long()
        if original_sizes is None:
            original_sizes = image_sizes
        original_sizes = torch.as_tensor(original_sizes, device=device).long()
        for name, sizes in (("image_sizes", image_sizes), ("original_sizes", original_sizes)):
            if sizes.shape != (batch, 2):
                raise InvalidImageError(f"{name} must have shape ({batch}, 2), got {tuple(sizes.shape)}.")
            if bool((sizes <= 0).any()):
                raise InvalidImageError(f"{name} must be positive, got {sizes.tolist()}.")
        if bool((image_sizes[:, 0] > height).any() or (image_sizes[:, 1] > width).any()):
            raise InvalidImageError(
                f"image_sizes {image_sizes.tolist()} exceed the padded batch size ({height}, {width})."
            )
        return image_sizes, original_sizes


def _check_finite_features(pyramid: list[torch.Tensor], dtype: torch.dtype) -> None:
    """Refuse to go on from non-finite features: NaN or infinite boxes would reach NMS and come out as detections.

    The input was checked finite, so they come from the network: float16 overflows above 65504, which a backbone's
    activations can pass; in float32 or bfloat16 (float32's range) they mean broken weights.
    """
    bad_levels = [index for index, level in enumerate(pyramid) if not bool(torch.isfinite(level).all())]
    if not bad_levels:
        return
    if dtype == torch.float16:
        advice = (
            "float16 overflowed (its largest value is 65504). Run the model in float32 (load it without dtype, or "
            "call model.float()) or in bfloat16, which has float32's range."
        )
    else:
        advice = "The weights hold NaN or infinite values, or are far out of range: convert the checkpoint again."
    raise NonFiniteFeaturesError(
        f"The backbone and neck computed infinite or NaN features in {dtype} (feature levels {bad_levels}) from "
        f"finite input, so no detection can be trusted. {advice}"
    )


def _stack_padded(per_image: list[torch.Tensor], count: int, fill: float) -> torch.Tensor:
    """`(batch, count, ...)`: each image's rows, then `fill` up to `count` rows (outputs have a fixed size)."""
    first = per_image[0]
    stacked = first.new_full((len(per_image), count, *first.shape[1:]), fill)
    for index, rows in enumerate(per_image):
        stacked[index, : rows.size(0)] = rows
    return stacked


def _counts(per_image: list[torch.Tensor]) -> torch.Tensor:
    return torch.tensor([rows.size(0) for rows in per_image], dtype=torch.long, device=per_image[0].device)


__all__ = [
    "FasterRCNNForObjectDetection",
    "FasterRCNNObjectDetectionOutput",
    "FasterRCNNPreTrainedModel",
    "set_training_loss_function",
]
