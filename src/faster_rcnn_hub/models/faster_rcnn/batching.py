"""Running a batch of differently sized images so that each gives what it gives on its own.

A padded image's features near its bottom and right borders depend on how much zero padding follows it
(convolutions see the padding, and BatchNorm's bias turns zeros into non-zero activations). mmdetection runs one
image at a time, padded to the next multiple of `pad_size_divisor`: its *own padded size*. A batch padded to a
larger size would shift those border features and with them, now and then, a detection. So the model runs the
images of a batch in groups of equal own padded size, each group cropped to exactly that size; images of one
padded size share a forward pass, and every image sees the padding it would see alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers.utils import ModelOutput

from .errors import InvalidImageError


def check_padded_sizes(padded_sizes: torch.Tensor, image_sizes: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
    """`padded_sizes` as a `(batch, 2)` long tensor, or an `InvalidImageError` saying what does not fit."""
    batch, _, height, width = pixel_values.shape
    padded_sizes = torch.as_tensor(padded_sizes, device=pixel_values.device).long()
    if padded_sizes.shape != (batch, 2):
        raise InvalidImageError(f"padded_sizes must have shape ({batch}, 2), got {tuple(padded_sizes.shape)}.")
    if bool((padded_sizes < image_sizes).any()):
        raise InvalidImageError(
            f"padded_sizes {padded_sizes.tolist()} must not be smaller than image_sizes {image_sizes.tolist()}."
        )
    if bool((padded_sizes[:, 0] > height).any() or (padded_sizes[:, 1] > width).any()):
        raise InvalidImageError(
            f"padded_sizes {padded_sizes.tolist()} exceed the pixel_values size ({height}, {width})."
        )
    return padded_sizes


def crop_to_batch_padding(pixel_values: torch.Tensor, padded_sizes: torch.Tensor | None) -> torch.Tensor:
    """`pixel_values` cropped to the batch's largest padded size: mmdetection's batch padding, used for losses."""
    if padded_sizes is None:
        return pixel_values
    height, width = torch.as_tensor(padded_sizes).max(dim=0).values.tolist()
    return pixel_values[:, :, :height, :width]


def group_by_padded_size(
    padded_sizes: torch.Tensor | Sequence[tuple[int, int]],
) -> list[tuple[tuple[int, int], list[int]]]:
    """`[((height, width), [indices]), ...]`, one entry per distinct padded size, in order of first appearance.

    `padded_sizes` holds one `(height, width)` per image: a `(batch, 2)` tensor, or a list of pairs.
    """
    sizes = padded_sizes.tolist() if isinstance(padded_sizes, torch.Tensor) else padded_sizes
    groups: dict[tuple[int, int], list[int]] = {}
    for index, (height, width) in enumerate(sizes):
        groups.setdefault((int(height), int(width)), []).append(index)
    return list(groups.items())


def run_in_groups(
    forward: Callable[..., ModelOutput],
    groups: list[tuple[tuple[int, int], list[int]]],
    pixel_values: torch.Tensor,
    image_sizes: torch.Tensor,
    original_sizes: torch.Tensor,
    proposals: Sequence[torch.Tensor] | None = None,
) -> ModelOutput:
    """Call `forward` once per group on the group's images cropped to its padded size (with their `proposals`, if
    given); merge the outputs back into batch order (every per-image output is already padded to a fixed count, so
    groups concatenate)."""
    outputs = []
    order: list[int] = []
    for (height, width), indices in groups:
        selection = torch.tensor(indices, device=pixel_values.device)
        outputs.append(
            forward(
                pixel_values=pixel_values[selection, :, :height, :width],
                image_sizes=image_sizes[selection],
                original_sizes=original_sizes[selection],
                proposals=None if proposals is None else [proposals[index] for index in indices],
                return_dict=True,
            )
        )
        order.extend(indices)
    back_to_batch_order = torch.argsort(torch.tensor(order, device=pixel_values.device))
    merged = {
        key: torch.cat([output[key] for output in outputs])[back_to_batch_order]
        for key, value in outputs[0].items()
        if isinstance(value, torch.Tensor)
    }
    return type(outputs[0])(**merged)


__all__ = ["check_padded_sizes", "crop_to_batch_padding", "group_by_padded_size", "run_in_groups"]
