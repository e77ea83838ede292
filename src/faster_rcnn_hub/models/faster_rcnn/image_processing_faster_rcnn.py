"""Image processor for Faster R-CNN: mmdetection's test-time resize, normalization and padding."""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

from .annotations import parse_image_annotations, training_target
from .errors import InvalidAnnotationError, InvalidConfigError, InvalidImageError
from .external_proposals import proposals_to_input_frame
from .image_io import to_rgb_array
from .mask_encoding import encode_rle
from .mask_pasting import paste_masks
from .saving import save_with_model_code

RESIZE_BACKENDS = ("opencv", "torch")
CHANNEL_ORDERS = ("rgb", "bgr")
RETURN_TENSORS = ("pt", "np")
# Settings a call may override for itself, as transformers' image processors allow (`processor(images, size=...)`).
CALL_SETTINGS = (
    "do_resize",
    "size",
    "resize_backend",
    "do_normalize",
    "image_mean",
    "image_std",
    "channel_order",
    "do_pad",
    "pad_size_divisor",
    "random_flip_probability",
)


def rescaled_size(height: int, width: int, longest_edge: int, shortest_edge: int) -> tuple[int, int]:
    """Keep-ratio size that fits `(longest_edge, shortest_edge)`, with mmcv's `imrescale` rounding.

    `scale = min(longest_edge / max(h, w), shortest_edge / min(h, w))`, and each side becomes
    `int(side * scale + 0.5)`.
    """
    scale = min(longest_edge / max(height, width), shortest_edge / min(height, width))
    return max(int(height * float(scale) + 0.5), 1), max(int(width * float(scale) + 0.5), 1)


def resize_uint8(image: np.ndarray, height: int, width: int, backend: str = "opencv") -> np.ndarray:
    """Bilinear resize of an `(H, W, 3)` uint8 image without antialiasing.

    `backend="opencv"` is `cv2.resize(..., INTER_LINEAR)`, the only way to reproduce mmdetection's pixels
    exactly (OpenCV's uint8 bilinear uses fixed-point arithmetic of its own). `backend="torch"` is PyTorch's
    bilinear interpolation, which differs by one grey level on a share of the pixels.
    """
    if image.shape[:2] == (height, width):
        return image
    if backend == "opencv":
        try:
            import cv2
        except ImportError as error:
            raise ImportError(
                "The exact (mmdetection) resize needs OpenCV: pip install opencv-contrib-python-headless, or create "
                "the processor with resize_backend='torch' for an approximate resize."
            ) from error
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    tensor = torch.tensor(image).permute(2, 0, 1)[None].float()
    resized = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False, antialias=False)
    return resized[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


class FasterRCNNImageProcessor(BaseImageProcessor):
    r"""
    Prepares images for [`FasterRCNNForObjectDetection`] exactly as mmdetection's test pipeline does: keep-ratio
    resize to fit `size`, optional RGB to BGR swap, `(pixel - mean) / std`, zero padding at the bottom and right
    to a multiple of `pad_size_divisor` (each image's *padded size*, returned as `padded_sizes`).

    With resizing on, `pixel_values` is a fixed square canvas that holds any resized image (for the default
    `size`, 1344 x 1344), so that images prepared one by one stack into a batch, as transformers' `pipeline` does
    with `batch_size > 1`; the model crops each image back to its padded size, so the extra zeros cost memory,
    not computation, and change no result.

    Args:
        do_resize (`bool`, *optional*, defaults to `True`):
            Resize to fit `size`, keeping the aspect ratio.
        size (`dict[str, int]`, *optional*, defaults to `{"longest_edge": 1333, "shortest_edge": 800}`):
            mmdetection's test `scale`: the long side fits `longest_edge` and the short side `shortest_edge`.
        resize_backend (`str`, *optional*, defaults to `"opencv"`):
            `"opencv"` reproduces mmdetection's resized pixels exactly; `"torch"` needs no OpenCV but differs by
            a grey level on some pixels.
        do_normalize (`bool`, *optional*, defaults to `True`):
            Subtract `image_mean` and divide by `image_std`.
        image_mean (`list[float]`, *optional*, defaults to `[123.675, 116.28, 103.53]`):
            Per-channel mean in 0-255 units, in the order of `channel_order`.
        image_std (`list[float]`, *optional*, defaults to `[58.395, 57.12, 57.375]`):
            Per-channel standard deviation in 0-255 units, in the order of `channel_order`.
        channel_order (`str`, *optional*, defaults to `"rgb"`):
            Channel order the network expects: `"rgb"`, or `"bgr"` for caffe-style checkpoints.
        do_pad (`bool`, *optional*, defaults to `True`):
            Pad each batch to a multiple of `pad_size_divisor`.
        pad_size_divisor (`int`, *optional*, defaults to 32):
            Padded height and width are multiples of this.
        random_flip_probability (`float`, *optional*, defaults to 0.0):
            Training augmentation (mmdetection's `RandomFlip`): each image passed *with annotations* is flipped
            left to right with this probability, its boxes with it. Calls without annotations never flip.
    """

    model_input_names = ["pixel_values", "image_sizes", "original_sizes", "padded_sizes"]

    def __init__(
        self,
        do_resize: bool = True,
        size: dict[str, int] | None = None,
        resize_backend: str = "opencv",
        do_normalize: bool = True,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        channel_order: str = "rgb",
        do_pad: bool = True,
        pad_size_divisor: int = 32,
        random_flip_probability: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.do_resize = do_resize
        self.size = dict(size) if size is not None else {"longest_edge": 1333, "shortest_edge": 800}
        self.resize_backend = resize_backend
        self.do_normalize = do_normalize
        self.image_mean = list(image_mean) if image_mean is not None else [123.675, 116.28, 103.53]
        self.image_std = list(image_std) if image_std is not None else [58.395, 57.12, 57.375]
        self.channel_order = channel_order
        self.do_pad = do_pad
        self.pad_size_divisor = pad_size_divisor
        self.random_flip_probability = random_flip_probability
        self.validate()

    def validate(self) -> None:
        """Check the settings; raise `InvalidConfigError` naming the bad one."""
        if set(self.size) != {"longest_edge", "shortest_edge"}:
            raise InvalidConfigError(
                f"size must be {{'longest_edge': int, 'shortest_edge': int}}, got {self.size!r}."
            )
        for key, value in self.size.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidConfigError(f"size['{key}'] must be a positive integer, got {value!r}.")
        if self.resize_backend not in RESIZE_BACKENDS:
            raise InvalidConfigError(f"resize_backend must be one of {RESIZE_BACKENDS}, got {self.resize_backend!r}.")
        if self.channel_order not in CHANNEL_ORDERS:
            raise InvalidConfigError(f"channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}.")
        for name in ("image_mean", "image_std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(
                isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                for value in values
            ):
                raise InvalidConfigError(f"{name} must be 3 finite numbers, got {values!r}.")
        if any(value <= 0 for value in self.image_std):
            raise InvalidConfigError(f"image_std must be positive, got {self.image_std!r}.")
        if not isinstance(self.pad_size_divisor, int) or isinstance(self.pad_size_divisor, bool) or (
            self.pad_size_divisor < 1
        ):
            raise InvalidConfigError(f"pad_size_divisor must be a positive integer, got {self.pad_size_divisor!r}.")
        _check_probability(self.random_flip_probability)
        for name in ("do_resize", "do_normalize", "do_pad"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidConfigError(f"{name} must be true or false, got {getattr(self, name)!r}.")

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> Any:
        """Write `preprocessor_config.json` as transformers does, and the model code beside it (`saving.py`), so
        that the folder loads with `trust_remote_code=True` where this package is not installed."""
        return save_with_model_code(self, super().save_pretrained, save_directory, push_to_hub, **kwargs)

    def with_settings(self, **overrides: Any) -> FasterRCNNImageProcessor:
        """A copy of this processor with some settings changed (any of `CALL_SETTINGS`), validated."""
        unknown = sorted(set(overrides) - set(CALL_SETTINGS))
        if unknown:
            raise TypeError(
                f"Unexpected arguments to FasterRCNNImageProcessor: {unknown}; the settings a call may override are "
                f"{list(CALL_SETTINGS)}."
            )
        changed = copy.copy(self)
        for name, value in overrides.items():
            if value is not None:
                setattr(changed, name, _copied(value))
        changed.validate()
        return changed

    # ------------------------------------------------------------------ preprocessing
    def __call__(self, images: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, **kwargs)

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """`(height, width)` an image of the given size has after this processor's resize."""
        if not self.do_resize:
            return height, width
        return rescaled_size(height, width, self.size["longest_edge"], self.size["shortest_edge"])

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """`(height, width)` a resized image of the given size is padded to: the next multiples of
        `pad_size_divisor` (mmdetection's `pad_shape`), or the size itself when `do_pad` is off."""
        divisor = self.pad_size_divisor if self.do_pad else 1
        return math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor

    def canvas_size(self, padded_sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
        """`(height, width)` of the `pixel_values` that holds images of these padded sizes.

        With resizing on, no resized side exceeds `size["longest_edge"]`, so a square of that side (padded) holds
        any image in either orientation: every call returns the same shape. Without resizing there is no bound,
        and the canvas is the batch's largest padded size.
        """
        heights = [height for height, _ in padded_sizes]
        widths = [width for _, width in padded_sizes]
        if self.do_resize:
            side = self.padded_size(self.size["longest_edge"], self.size["longest_edge"])[0]
            heights.append(side)
            widths.append(side)
        return max(heights), max(widths)

    def resize(self, image: np.ndarray) -> np.ndarray:
        """Resize one `(H, W, 3)` uint8 RGB image as mmdetection's test pipeline does."""
        height, width = image.shape[:2]
        if not self.do_resize:
            return image
        new_height, new_width = self.resized_size(height, width)
        return resize_uint8(image, new_height, new_width, self.resize_backend)

    def preprocess(
        self,
        images: Any,
        annotations: Any = None,
        return_tensors: str | None = "pt",
        channels_first: bool | None = None,
        device: torch.device | str | None = None,
        category_id_to_label: Mapping[int, int] | None = None,
        random_flip_probability: float | None = None,
        generator: torch.Generator | None = None,
        proposals: Any = None,
        **settings: Any,
    ) -> BatchFeature:
        """Resize, normalize and pad one image or a list of images into a batch, with training labels if given.

        Args:
            images: A PIL image, NumPy array or tensor, or a list of them (sizes may differ). Arrays and
                tensors are RGB, `(H, W)`, `(H, W, C)` or, for tensors, `(C, H, W)`.
            annotations: COCO-format annotations, one per image (or one dict for one image), as for
                transformers' DETR processor: `{"image_id": ..., "annotations": [{"bbox": [x, y, w, h],
                "category_id": ...}, ...]}` with boxes in pixels of the original image. Crowd, ignored and
                degenerate objects are dropped, as mmdetection drops them.
            return_tensors: `"pt"` (the default; `None` means the same) for PyTorch tensors, `"np"` for NumPy arrays.
            channels_first: Layout of 3-D arrays and tensors; inferred when `None`.
            device: Where to put the returned tensors.
            category_id_to_label: Maps each COCO `category_id` to a class index of the model; objects of other
                categories are dropped. `None` takes the `category_id` as the class index.
            random_flip_probability: Overrides the processor's flip probability for this call.
            generator: Random generator of the flips (PyTorch's global one when `None`), for repeatable runs.
            proposals: Boxes for the RoI head from outside the model (selective search, another detector), one
                `(n, 4)` array or tensor per image (or one for one image), x1, y1, x2, y2 in pixels of the original
                image. They are scaled to the resized image, clipped to it and flipped with it, and returned as
                `proposals`, the model's argument of that name.
            **settings: Any of the processor's settings (`do_resize`, `size`, `resize_backend`, `do_normalize`,
                `image_mean`, `image_std`, `channel_order`, `do_pad`, `pad_size_divisor`), for this call only;
                `None` keeps the processor's own.

        Returns:
            `BatchFeature` with `pixel_values` `(B, 3, H, W)` float32 (zero outside each image, see
            `canvas_size`), `image_sizes` `(B, 2)` (resized height and width), `original_sizes` `(B, 2)` (height
            and width before resizing) and `padded_sizes` `(B, 2)` (each image's own padded size). With
            `annotations`, also `labels`: per image a dict with `class_labels` `(n,)`, `boxes` `(n, 4)` (x1, y1,
            x2, y2 in pixels of the resized, possibly flipped image: the model's `labels` argument), `size`,
            `orig_size`, `flipped` and `image_id`; such training batches are padded to their largest image only,
            as mmdetection pads them, not to the fixed canvas. With `proposals`, also `proposals`: per image an
            `(n, 4)` float32 tensor in pixels of the resized, possibly flipped image, every box kept in order.
        """
        return_tensors = _check_return_tensors(return_tensors, device)
        if random_flip_probability is not None:
            settings["random_flip_probability"] = random_flip_probability
        if settings:
            return self.with_settings(**settings).preprocess(
                images, annotations, return_tensors, channels_first, device, category_id_to_label,
                generator=generator, proposals=proposals,
            )  # fmt: skip
        image_list = self._as_list(images)
        arrays = [to_rgb_array(image, channels_first) for image in image_list]
        original_sizes = [array.shape[:2] for array in arrays]
        parsed = self._parse_annotations(annotations, original_sizes)
        resized = [self.resize(array) for array in arrays]
        image_sizes = [array.shape[:2] for array in resized]
        proposal_list = self._proposal_list(proposals, len(arrays))
        labels = None
        flips = [False] * len(resized)
        if parsed is not None:
            probability = self.random_flip_probability
            flips = [
                probability > 0 and bool(torch.rand((), generator=generator) < probability) for _ in resized
            ]
            resized = [np.ascontiguousarray(array[:, ::-1]) if flip else array for array, flip in zip(resized, flips)]
            labels = [
                training_target(entry, original, size, flip, category_id_to_label, device)
                for entry, original, size, flip in zip(parsed, original_sizes, image_sizes, flips)
            ]
        padded_sizes = [self.padded_size(height, width) for height, width in image_sizes]
        # Inference inputs share one fixed canvas so that images prepared one at a time stack (the pipeline);
        # a training batch is prepared whole and only needs its largest image's padding.
        canvas = self.canvas_size(padded_sizes) if labels is None else tuple(map(max, zip(*padded_sizes)))
        pixel_values = self.normalize_and_pad(resized, device=device, size=canvas)
        data = {
            "pixel_values": pixel_values,
            "image_sizes": torch.tensor(image_sizes, dtype=torch.long, device=pixel_values.device),
            "original_sizes": torch.tensor(original_sizes, dtype=torch.long, device=pixel_values.device),
            "padded_sizes": torch.tensor(padded_sizes, dtype=torch.long, device=pixel_values.device),
        }
        if labels is not None:
            data["labels"] = labels
        if proposal_list is not None:
            data["proposals"] = [
                proposals_to_input_frame(boxes, original, size, flip, index, pixel_values.device)
                for index, (boxes, original, size, flip) in enumerate(
                    zip(proposal_list, original_sizes, image_sizes, flips)
                )
            ]
        return _as_return_tensors(data, return_tensors)

    @staticmethod
    def _proposal_list(proposals: Any, num_images: int) -> list | None:
        if proposals is None:
            return None
        one_image = isinstance(proposals, (np.ndarray, torch.Tensor)) and proposals.ndim == 2
        proposal_list = [proposals] if one_image else proposals
        if not isinstance(proposal_list, (Sequence, np.ndarray, torch.Tensor)) or len(proposal_list) != num_images:
            count = len(proposal_list) if hasattr(proposal_list, "__len__") else type(proposal_list).__name__
            raise InvalidAnnotationError(
                f"proposals must hold one (n, 4) box array per image: {num_images} images, got {count}."
            )
        return list(proposal_list)

    @staticmethod
    def _parse_annotations(annotations: Any, original_sizes: Sequence[tuple[int, int]]) -> list | None:
        if annotations is None:
            return None
        if isinstance(annotations, Mapping):
            annotations = [annotations]
        if not isinstance(annotations, Sequence) or len(annotations) != len(original_sizes):
            count = len(annotations) if isinstance(annotations, Sequence) else type(annotations).__name__
            raise InvalidAnnotationError(
                f"annotations must hold one entry per image: {len(original_sizes)} images, got {count}."
            )
        return [
            parse_image_annotations(entry, size, index)
            for index, (entry, size) in enumerate(zip(annotations, original_sizes))
        ]

    @staticmethod
    def _as_list(images: Any) -> list:
        if isinstance(images, (list, tuple)):
            image_list = list(images)
        elif isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
            image_list = list(images)
        else:
            image_list = [images]
        if not image_list:
            raise InvalidImageError("No images given: pass at least one image.")
        return image_list

    def normalize_and_pad(
        self,
        images: Sequence[np.ndarray],
        device: torch.device | str | None = None,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Stack `(H, W, 3)` uint8 RGB images into a normalized, zero-padded `(B, 3, H, W)` float32 tensor.

        The order of operations is mmdetection's: channel swap, float, `(x - mean) / std`, then padding with 0.
        `size` is the `(H, W)` to pad to; by default the largest image's padded size.
        """
        if size is None:
            size = tuple(max(sides) for sides in zip(*(self.padded_size(*image.shape[:2]) for image in images)))
        padded_height, padded_width = size
        batch = torch.zeros((len(images), 3, padded_height, padded_width), dtype=torch.float32, device=device)
        mean = torch.tensor(self.image_mean, dtype=torch.float32, device=batch.device).view(3, 1, 1)
        std = torch.tensor(self.image_std, dtype=torch.float32, device=batch.device).view(3, 1, 1)
        for index, image in enumerate(images):
            tensor = torch.tensor(image, dtype=torch.uint8, device=batch.device).permute(2, 0, 1)
            if self.channel_order == "bgr":
                tensor = tensor.flip(0)
            tensor = tensor.float()
            if self.do_normalize:
                tensor = (tensor - mean) / std
            batch[index, :, : image.shape[0], : image.shape[1]] = tensor
        return batch

    def pad(
        self,
        images: Sequence[torch.Tensor | np.ndarray],
        image_sizes: Sequence[Sequence[int]] | torch.Tensor | None = None,
        return_pixel_mask: bool = False,
        return_tensors: str | None = "pt",
        pad_size: Mapping[str, int] | None = None,
    ) -> BatchFeature:
        """Stack prepared images of different sizes into one zero-padded batch, as a collate function needs.

        Each image is cut to its own padded size (its `image_sizes` entry padded to `pad_size_divisor`; the
        processor's outputs are zero beyond it), then padded at the bottom and right to the largest of them, or to
        `pad_size`. This is what `__call__` does for a whole batch at once, so a batch made from samples prepared
        one by one gives the model the same input.

        Args:
            images: `(3, H, W)` (or `(1, 3, H, W)`) `pixel_values` of single images, tensors or arrays.
            image_sizes: `(height, width)` of each resized image inside its `pixel_values` (the processor's
                `image_sizes`); by default the whole of each image.
            return_pixel_mask: Also return `pixel_mask` `(B, H, W)`, 1 on image pixels and 0 on padding. The
                model reads `image_sizes` instead and takes no `pixel_mask`: leave it out of the model's inputs.
            return_tensors: `"pt"` or `"np"`.
            pad_size: `{"height": ..., "width": ...}` to pad every image to, instead of the largest.

        Returns:
            `BatchFeature` with `pixel_values` `(B, 3, H, W)`, `image_sizes` and `padded_sizes` `(B, 2)`, and
            `pixel_mask` when asked for.
        """
        return_tensors = _check_return_tensors(return_tensors, None)
        if not isinstance(images, Sequence) or isinstance(images, (str, bytes)) or len(images) == 0:
            raise InvalidImageError("pad() takes a non-empty list of prepared images (pixel_values of one image each).")
        tensors = [_single_pixel_values(image, index) for index, image in enumerate(images)]
        if image_sizes is None:
            sizes = [tuple(tensor.shape[-2:]) for tensor in tensors]
        else:
            sizes = [tuple(int(side) for side in size) for size in _as_rows(image_sizes)]
            if len(sizes) != len(tensors):
                raise InvalidImageError(f"pad() got {len(tensors)} images but {len(sizes)} image_sizes.")
        padded_sizes = []
        for index, (tensor, (height, width)) in enumerate(zip(tensors, sizes)):
            if not (0 < height <= tensor.shape[-2] and 0 < width <= tensor.shape[-1]):
                raise InvalidImageError(
                    f"image_sizes[{index}] = {(height, width)} does not fit in its image of size {tuple(tensor.shape[-2:])}."
                )
            padded_height, padded_width = self.padded_size(height, width)
            padded_sizes.append((min(padded_height, tensor.shape[-2]), min(padded_width, tensor.shape[-1])))
        if pad_size is None:
            canvas = tuple(map(max, zip(*padded_sizes)))
        else:
            if not isinstance(pad_size, Mapping) or set(pad_size) != {"height", "width"}:
                raise InvalidImageError(f"pad_size must be {{'height': int, 'width': int}}, got {pad_size!r}.")
            canvas = (int(pad_size["height"]), int(pad_size["width"]))
            if any(height > canvas[0] or width > canvas[1] for height, width in padded_sizes):
                raise InvalidImageError(f"pad_size {dict(pad_size)} is smaller than an image's padded size {padded_sizes}.")
        first = tensors[0]
        batch = first.new_zeros((len(tensors), first.shape[0], *canvas))
        mask = torch.zeros((len(tensors), *canvas), dtype=torch.long, device=first.device)
        for index, (tensor, (height, width), (image_height, image_width)) in enumerate(zip(tensors, padded_sizes, sizes)):
            batch[index, :, :height, :width] = tensor[:, :height, :width]
            mask[index, :image_height, :image_width] = 1
        data = {
            "pixel_values": batch,
            "image_sizes": torch.tensor(sizes, dtype=torch.long, device=first.device),
            "padded_sizes": torch.tensor(padded_sizes, dtype=torch.long, device=first.device),
        }
        if return_pixel_mask:
            data["pixel_mask"] = mask
        return _as_return_tensors(data, return_tensors)

    # ------------------------------------------------------------------ post-processing
    def post_process_object_detection(
        self,
        outputs: Any,
        threshold: float = 0.5,
        target_sizes: torch.Tensor | Sequence[Sequence[int]] | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """Detections of each image with a score above `threshold`.

        Args:
            outputs: The output of [`FasterRCNNForObjectDetection`].
            threshold: Keep detections whose score is larger than this.
            target_sizes: `(height, width)` per image to express boxes in. `None` (the default, best) gives boxes
                in original-image pixels: the image as the processor read it, after its EXIF rotation, so not
                necessarily `(image.height, image.width)` of a file opened with `Image.open`. Another size
                rescales them; a size that is the original one with height and width swapped (the usual sign of
                a size taken before the EXIF rotation) is warned about.

        Returns:
            One dict per image with `scores` `(N,)`, `labels` `(N,)` (indices into `config.id2label`) and `boxes`
            `(N, 4)` as x1, y1, x2, y2, by decreasing score.
        """
        boxes, scores, labels = outputs["pred_boxes"], outputs["scores"], outputs["labels"]
        counts = outputs["num_detections"].tolist()
        original_sizes = outputs["original_sizes"].tolist()
        if target_sizes is not None:
            target_list = target_sizes.tolist() if isinstance(target_sizes, torch.Tensor) else list(target_sizes)
            if len(target_list) != len(counts):
                raise ValueError(
                    f"target_sizes has {len(target_list)} entries but the outputs hold {len(counts)} images."
                )
        else:
            target_list = original_sizes
        for index, (target, original) in enumerate(zip(target_list, original_sizes)):
            target_height, target_width = (float(value) for value in target)
            if original[0] != original[1] and (target_height, target_width) == (float(original[1]), float(original[0])):
                warnings.warn(
                    f"target_sizes[{index}] is {tuple(target)}, the original image's (height, width) = "
                    f"{tuple(original)} swapped: it was probably taken from an image before its EXIF rotation "
                    "(Image.open(...).size), which the processor applied, so the boxes would be in neither frame. "
                    "Leave target_sizes out to get boxes in the pixels of the image as the processor read it.",
                    UserWarning,
                    stacklevel=2,
                )
        results = []
        for index, count in enumerate(counts):
            image_scores = scores[index, :count]
            image_labels = labels[index, :count]
            image_boxes = boxes[index, :count]
            target_height, target_width = (float(value) for value in target_list[index])
            original_height, original_width = original_sizes[index]
            if (target_height, target_width) != (float(original_height), float(original_width)):
                factors = image_boxes.new_tensor(
                    [target_width / original_width, target_height / original_height] * 2
                )
                image_boxes = image_boxes * factors
            # Boxes are clipped to the resized image before being scaled back, which can overshoot the
            # original border by a float rounding; report them inside the image.
            image_boxes = torch.stack(
                [
                    image_boxes[:, 0].clamp(0, target_width),
                    image_boxes[:, 1].clamp(0, target_height),
                    image_boxes[:, 2].clamp(0, target_width),
                    image_boxes[:, 3].clamp(0, target_height),
                ],
                dim=1,
            )
            keep = image_scores > threshold
            results.append({"scores": image_scores[keep], "labels": image_labels[keep], "boxes": image_boxes[keep]})
        return results

    def post_process_instance_segmentation(
        self,
        outputs: Any,
        threshold: float = 0.5,
        target_sizes: torch.Tensor | Sequence[Sequence[int]] | None = None,
        return_binary_maps: bool = False,
        return_coco_annotation: bool = False,
        mask_threshold: float = 0.5,
        overlap_mask_area_threshold: float | None = None,
    ) -> list[dict[str, Any]]:
        """Instances of each image with a score above `threshold`: a Mask R-CNN's masks pasted into the image, in
        the convention of transformers' Mask2Former image processor (what `pipeline("image-segmentation")` reads).

        Each detection's low-resolution mask probabilities (`outputs.pred_masks`) are pasted at its box as
        mmdetection pastes them (`paste_masks`), and a pixel belongs to the instance where the pasted probability is
        at least `mask_threshold`.

        Args:
            outputs: The output of a [`FasterRCNNForObjectDetection`] with a mask head (`config.mask_head`).
            threshold: Keep detections whose score is larger than this.
            target_sizes: `(height, width)` per image to paste into, as in `post_process_object_detection`. `None`
                (the default, best) gives masks in original-image pixels.
            return_binary_maps: Return `segmentation` as a `(num_instances, height, width)` bool tensor, one mask
                per kept detection, instead of an id map.
            return_coco_annotation: Return `segmentation` as a list of COCO RLE dicts (`{"size": [h, w],
                "counts": str}`, as pycocotools encodes them), one per kept detection.
            mask_threshold: Binarisation threshold of the pasted probabilities (mmdetection's `mask_thr_binary`,
                usually `config.mask_head["mask_threshold"]`, 0.5).
            overlap_mask_area_threshold: Accepted for `pipeline` compatibility and not used: Mask R-CNN's
                instances are separate masks that may overlap, and none is merged or dropped.

        Returns:
            One dict per image:
            - **segmentation**: a `(height, width)` long tensor holding at each pixel the `id` of the best-scored
              instance covering it, -1 where none does; or the binary maps, or the RLE list (see above).
            - **segments_info**: one dict per kept detection, by decreasing score: `id` (its index, 0, 1, ...),
              `label_id` (index into `config.id2label`), `score` and `box` (x1, y1, x2, y2 in the target pixels).
              An instance whose mask is empty is listed too (mmdetection keeps it).
        """
        if return_binary_maps and return_coco_annotation:
            raise ValueError("return_binary_maps and return_coco_annotation cannot both be True; choose one.")
        if outputs.get("pred_masks") is None:
            raise InvalidConfigError(
                "The outputs hold no masks (pred_masks): the model has no mask head (config.mask_head). Use "
                "post_process_object_detection for a box detector."
            )
        valid_threshold = isinstance(mask_threshold, (int, float)) and not isinstance(mask_threshold, bool)
        if not valid_threshold or not 0 <= mask_threshold <= 1:
            raise ValueError(f"mask_threshold must be a number in [0, 1], got {mask_threshold!r}.")
        detections = self.post_process_object_detection(outputs, threshold=threshold, target_sizes=target_sizes)
        original_sizes = outputs["original_sizes"].tolist()
        target_list = original_sizes if target_sizes is None else _as_rows(target_sizes)
        results = []
        for index, found in enumerate(detections):
            height, width = (int(value) for value in target_list[index])
            keep = outputs["scores"][index, : int(outputs["num_detections"][index])] > threshold
            # The unclamped boxes: mmdetection pastes at the boxes as divided by the scale factor, which may pass
            # the border by a rounding; the reported boxes are clamped to the image.
            paste_boxes = outputs["pred_boxes"][index, : keep.numel()][keep].float()
            original_height, original_width = original_sizes[index]
            if (height, width) != (original_height, original_width):
                factors = [width / original_width, height / original_height] * 2
                paste_boxes = paste_boxes * paste_boxes.new_tensor(factors)
            probabilities = outputs["pred_masks"][index, : keep.numel()][keep]
            masks = paste_masks(probabilities, paste_boxes, (height, width), threshold=mask_threshold)
            segments_info = [
                {"id": number, "label_id": int(label), "score": float(score), "box": [float(v) for v in box]}
                for number, (label, score, box) in enumerate(zip(found["labels"], found["scores"], found["boxes"]))
            ]
            if return_binary_maps:
                segmentation: Any = masks
            elif return_coco_annotation:
                segmentation = [encode_rle(mask) for mask in masks]
            else:
                segmentation = torch.full((height, width), -1, dtype=torch.long, device=masks.device)
                # Paint the lowest score first, so that where instances overlap the best-scored one shows.
                for number in reversed(range(masks.size(0))):
                    segmentation[masks[number]] = number
            results.append({"segmentation": segmentation, "segments_info": segments_info})
        return results


def _check_probability(value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise InvalidConfigError(f"random_flip_probability must be a number in [0, 1], got {value!r}.")


def _copied(value: Any) -> Any:
    # Settings hold plain values; lists and dicts are copied so that a call's copy never shares them.
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)):
        return list(value)
    return value


def _check_return_tensors(return_tensors: str | None, device: Any) -> str:
    return_tensors = "pt" if return_tensors is None else return_tensors
    if return_tensors not in RETURN_TENSORS:
        raise ValueError(f"return_tensors must be one of {RETURN_TENSORS} (or None for 'pt'), got {return_tensors!r}.")
    if return_tensors == "np" and device is not None and torch.device(device).type != "cpu":
        raise ValueError(f"return_tensors='np' gives NumPy arrays, which live on the CPU; got device={device!r}.")
    return return_tensors


def _as_return_tensors(data: dict[str, Any], return_tensors: str) -> BatchFeature:
    if return_tensors == "np":
        data = {key: _to_numpy(value) for key, value in data.items()}
    return BatchFeature(data=data)


def _to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, Mapping):
        return {key: _to_numpy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_numpy(item) for item in value]
    return value


def _single_pixel_values(image: Any, index: int) -> torch.Tensor:
    tensor = torch.from_numpy(np.asarray(image)) if isinstance(image, np.ndarray) else image
    if not isinstance(tensor, torch.Tensor):
        raise InvalidImageError(f"pad() takes tensors or arrays; image {index} is a {type(image).__name__}.")
    if tensor.dim() == 4 and tensor.size(0) == 1:
        tensor = tensor[0]
    if tensor.dim() != 3:
        raise InvalidImageError(
            f"pad() takes the (3, H, W) pixel_values of one image each; image {index} has shape {tuple(tensor.shape)}."
        )
    return tensor


def _as_rows(sizes: Any) -> list:
    return sizes.tolist() if isinstance(sizes, (torch.Tensor, np.ndarray)) else list(sizes)


__all__ = ["FasterRCNNImageProcessor"]
