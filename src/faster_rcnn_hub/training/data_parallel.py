"""Distributed data-parallel training pieces: what each process computes so that N processes with B images each
train exactly as one process with N x B images (up to the order of floating-point sums).

- Each step's images are the same global batch one process would take; process k gets the k-th contiguous share
  (`share_bounds`), and its flips are the draws one process would make for those images.
- Every process pads its images to the largest padded size of the whole global batch, as one process would.
- Each loss term divides by its normaliser summed over the processes (the sampled anchors or RoIs of the global
  batch), and is multiplied by the number of processes because DDP averages the gradients.
- A process whose share is empty (a last batch with fewer images than processes) runs a stand-in image with
  weight 0: it takes part in the collectives and contributes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .detection_loss import GroundTruth, Normalizer, detection_losses


class TrainingStep(nn.Module):
    """The detector's training losses as one `forward`, so that DDP (via `Accelerator.prepare`) can wrap it: DDP
    synchronises gradients only for computations that go through its wrapper's `forward`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        pixel_values: torch.Tensor,
        image_sizes: torch.Tensor,
        ground_truth: Sequence[GroundTruth],
        stages: Sequence[str],
        proposals: Sequence[torch.Tensor] | None,
        normalizer: Normalizer | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model = self.model
        features = model.fpn(model.backbone(pixel_values))
        losses = detection_losses(model, features, image_sizes, ground_truth, stages, proposals, normalizer)
        return losses.loss, losses.loss_dict


def share_bounds(count: int, num_processes: int, process_index: int) -> tuple[int, int]:
    """`(start, stop)` of process `process_index`'s contiguous share of `count` items (sizes differ by one)."""
    size, extra = divmod(count, num_processes)
    start = process_index * size + min(process_index, extra)
    return start, start + size + (1 if process_index < extra else 0)


def skip_flip_draws(generator: torch.Generator, images: int, flip_probability: float) -> None:
    """Advance `generator` past the flip draws of `images` images: the image processor draws one number per image
    (and none when the probability is 0), so a process starts where one process would be at its first image."""
    if flip_probability > 0:
        for _ in range(images):
            torch.rand((), generator=generator)


def pad_to(pixel_values: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zero-pad (the processor's padding value) the bottom and right of a batch to `height` x `width`."""
    return F.pad(pixel_values, (0, width - pixel_values.shape[-1], 0, height - pixel_values.shape[-2]))


def sum_over_processes(accelerator: Any, values: torch.Tensor) -> torch.Tensor:
    """`values` summed over every process (an all-reduce; every process must call it, in the same order)."""
    return accelerator.reduce(values.clone(), reduction="sum")


def max_over_processes(accelerator: Any, values: torch.Tensor) -> torch.Tensor:
    gathered = accelerator.gather(values.unsqueeze(0))
    return gathered.max(dim=0).values
