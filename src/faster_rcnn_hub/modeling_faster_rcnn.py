"""Faster R-CNN (ResNet/ResNeXt + FPN or a single C4/DC5 map + RPN + RoI head) as a transformers `PreTrainedModel`."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .backbone import BasicBlock, Bottleneck, ResNetBackbone
from .configuration_faster_rcnn import FasterRCNNConfig
from .errors import InvalidImageError
from .fpn import FeaturePyramidNetwork
from .fused_inference import FusedInferenceMixin
from .padded_batches import check_padded_sizes, crop_to_batch_padding, group_by_padded_size, run_in_groups
from .pipeline_logging import hide_unlisted_model_error
from .roi_heads import Detections, RoIHeads
from .rpn import Proposals, RegionProposalNetwork
from .freezing import freeze_backbone_stages


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
        RPN proposals as x1, y1, x2, y2 in resized-image pixels; zeros past `num_proposals`.
    proposal_scores (`torch.FloatTensor` of shape `(batch_size, max_proposals)`):
        Objectness of each proposal.
    num_proposals (`torch.LongTensor` of shape `(batch_size,)`):
        How many proposal rows are real.
    image_sizes (`torch.LongTensor` of shape `(batch_size, 2)`):
        `(height, width)` of each resized image inside the padded batch.
    original_sizes (`torch.LongTensor` of shape `(batch_size, 2)`):
        `(height, width)` of each image before resizing: the frame of `pred_boxes`.
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


hide_unlisted_model_error()


class FasterRCNNPreTrainedModel(PreTrainedModel):
    config: FasterRCNNConfig
    config_class = FasterRCNNConfig
    base_model_prefix = "faster_rcnn"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["Bottleneck", "BasicBlock"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # mmdetection's initialisation: Kaiming for the backbone, Xavier for the FPN, small normals for the
        # prediction layers.
        if isinstance(module, nn.Conv2d):
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
            elif isinstance(module, RoIHeads):
                init.normal_(module.box_predictor.cls_score.weight, mean=0.0, std=0.01)
                init.normal_(module.box_predictor.bbox_pred.weight, mean=0.0, std=0.001)
                init.zeros_(module.box_predictor.cls_score.bias)
                init.zeros_(module.box_predictor.bbox_pred.bias)


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
        self.roi_heads = RoIHeads(config)
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

    def forward(
        self,
        pixel_values: torch.Tensor,
        image_sizes: torch.Tensor | None = None,
        original_sizes: torch.Tensor | None = None,
        labels: list[dict[str, torch.Tensor]] | None = None,
        return_dict: bool | None = None,
        padded_sizes: torch.Tensor | None = None,
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
                `loss` and `loss_dict`, mmdetection's Faster R-CNN training losses. In training mode nothing else is
                computed; in eval mode the detections are returned as well.
        """
        if kwargs:
            raise TypeError(
                f"FasterRCNNForObjectDetection.forward() got unexpected arguments {sorted(kwargs)}; "
                "it takes pixel_values, image_sizes, original_sizes, padded_sizes and labels."
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        image_sizes, original_sizes = self._check_inputs(pixel_values, image_sizes, original_sizes)
        if padded_sizes is not None:
            padded_sizes = check_padded_sizes(padded_sizes, image_sizes, pixel_values)
            if self.training or labels is not None:
                # Losses are computed as mmdetection trains (and validates): on the batch padded to its largest
                # image, so crop away the rest of the canvas.
                pixel_values = crop_to_batch_padding(pixel_values, padded_sizes)
            else:
                # At inference every image must see only its own padding (see padded_batches.py).
                groups = group_by_padded_size(padded_sizes)
                if len(groups) > 1 or groups[0][0] != tuple(pixel_values.shape[-2:]):
                    output = run_in_groups(self.forward, groups, pixel_values, image_sizes, original_sizes)
                    return output if return_dict else output.to_tuple()

        # A model loaded or cast to bfloat16/float16 runs its network in that dtype; proposals, RoIAlign, box
        # decoding and NMS stay in float32 (see rpn.py and roi_heads.py), and so do the outputs.
        pyramid = self.fpn(self.backbone(pixel_values.to(self.dtype)))
        losses = None
        if labels is not None:
            training = _training_losses_module()
            ground_truth = training.parse_labels(labels, pixel_values.size(0), self.config.num_classes, pixel_values.device)
            losses = training.detection_losses(self, pyramid, image_sizes, ground_truth)
            if self.training:
                output = FasterRCNNObjectDetectionOutput(
                    loss=losses.loss, loss_dict=losses.loss_dict, image_sizes=image_sizes, original_sizes=original_sizes
                )
                return output if return_dict else output.to_tuple()
        proposals = self.rpn(pyramid, image_sizes)
        detections = self.roi_heads(pyramid, [proposal.boxes for proposal in proposals], image_sizes, original_sizes)

        output = FasterRCNNObjectDetectionOutput(
            loss=losses.loss if losses is not None else None,
            loss_dict=losses.loss_dict if losses is not None else None,
            **_pad_detections(detections, self.config.rcnn_max_per_img, pixel_values),
            **_pad_proposals(proposals, self.config.rpn_max_per_img, pixel_values),
            image_sizes=image_sizes,
            original_sizes=original_sizes,
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


def _training_losses_module():
    """The training-loss code, imported when labels are given.

    It lives in the `training` subpackage, which a converted folder's remote-code copy of this model does not
    carry (transformers' dynamic modules are flat files): such a copy runs inference, and says how to train.
    """
    try:
        return importlib.import_module(f"{__package__}.training.detection_loss")
    except ModuleNotFoundError as error:
        raise ImportError(
            "Training (forward with labels) needs the faster-rcnn-hub package itself: pip install faster-rcnn-hub, "
            "then load the model with faster_rcnn_hub.FasterRCNNForObjectDetection."
        ) from error


def _pad_detections(detections: list[Detections], count: int, reference: torch.Tensor) -> dict[str, torch.Tensor]:
    batch = len(detections)
    boxes = reference.new_zeros((batch, count, 4), dtype=torch.float32)
    scores = reference.new_zeros((batch, count), dtype=torch.float32)
    labels = torch.full((batch, count), -1, dtype=torch.long, device=reference.device)
    numbers = torch.zeros(batch, dtype=torch.long, device=reference.device)
    for index, detection in enumerate(detections):
        kept = detection.scores.size(0)
        boxes[index, :kept] = detection.boxes
        scores[index, :kept] = detection.scores
        labels[index, :kept] = detection.labels
        numbers[index] = kept
    return {"pred_boxes": boxes, "scores": scores, "labels": labels, "num_detections": numbers}


def _pad_proposals(proposals: list[Proposals], count: int, reference: torch.Tensor) -> dict[str, torch.Tensor]:
    batch = len(proposals)
    boxes = reference.new_zeros((batch, count, 4), dtype=torch.float32)
    scores = reference.new_zeros((batch, count), dtype=torch.float32)
    numbers = torch.zeros(batch, dtype=torch.long, device=reference.device)
    for index, proposal in enumerate(proposals):
        kept = proposal.scores.size(0)
        boxes[index, :kept] = proposal.boxes
        scores[index, :kept] = proposal.scores
        numbers[index] = kept
    return {"proposals": boxes, "proposal_scores": scores, "num_proposals": numbers}


__all__ = ["FasterRCNNForObjectDetection", "FasterRCNNObjectDetectionOutput", "FasterRCNNPreTrainedModel"]
