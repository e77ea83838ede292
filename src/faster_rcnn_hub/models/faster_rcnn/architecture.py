"""The architecture choices a `FasterRCNNConfig` can make, as plain Python tables.

They are kept apart from the configuration class (which needs transformers, and so torch) because the converter
checks mmdetection configs against them without loading either: `faster-rcnn-hub zoo` says which zoo entries
convert in a fraction of a second.
"""

# ResNet depth -> (block type, blocks per stage), as in mmdetection's `ResNet.arch_settings`.
RESNET_ARCHITECTURES: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
# Output channels of a block per planes of its stage.
BLOCK_EXPANSION = {"basic": 1, "bottleneck": 4}
BACKBONE_STYLES = ("pytorch", "caffe")
NECK_TYPES = ("fpn", "none")
ROI_HEAD_TYPES = ("fc", "shared_res5")
NMS_TYPES = ("nms", "soft_nms")
# How soft-NMS lowers the score of a box overlapping a selected one (mmcv's `method`).
SOFT_NMS_METHODS = ("linear", "gaussian", "naive")
# Where the RoI head's boxes come from: the model's own RPN (Faster R-CNN), or boxes passed to `forward` as
# `proposals` (Fast R-CNN: a model trained on them has an untrained RPN).
PROPOSAL_SOURCES = ("rpn", "external")
# What each entry of a Cascade R-CNN's `cascade_stages` holds: the stage's box-coder stds, its training IoU
# threshold and its loss weight.
CASCADE_STAGE_KEYS = ("box_coder_stds", "iou_threshold", "loss_weight")
# What `mask_head` (Mask R-CNN's mask branch, mmdetection's `FCNMaskHead` on a `SingleRoIExtractor`) holds, with
# mmdetection's defaults: RoIAlign output size, sampling ratio and alignment of the mask RoI extractor; the number and
# width of the 3x3 convolutions; the deconvolution's upsampling factor (so the mask side is
# `roi_output_size * upsample_ratio`, 28); one mask for every class or one per class; the test-time binarisation
# threshold (mmdetection's `test_cfg.rcnn.mask_thr_binary`).
MASK_HEAD_DEFAULTS: dict = {
    "roi_output_size": 14,
    "roi_sampling_ratio": 0,
    "roi_aligned": True,
    "num_convs": 4,
    "conv_channels": 256,
    "upsample_ratio": 2,
    "class_agnostic": False,
    "mask_threshold": 0.5,
}
# The residual stage the C4 box head runs on every RoI (mmdetection's `ResLayer` with `stage=3`).
SHARED_RES5_STAGE = 3

__all__ = [
    "BACKBONE_STYLES",
    "BLOCK_EXPANSION",
    "CASCADE_STAGE_KEYS",
    "MASK_HEAD_DEFAULTS",
    "NECK_TYPES",
    "NMS_TYPES",
    "PROPOSAL_SOURCES",
    "RESNET_ARCHITECTURES",
    "ROI_HEAD_TYPES",
    "SHARED_RES5_STAGE",
    "SOFT_NMS_METHODS",
]
