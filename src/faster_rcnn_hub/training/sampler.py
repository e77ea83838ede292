"""Random sampling of positive and negative candidates for a loss (mmdetection's `RandomSampler`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .assigner import AssignResult


@dataclass
class SamplingResult:
    """The candidates a loss is computed on: positives first, then negatives.

    Attributes:
        pos_indices: Indices into `candidates` of the sampled positives (increasing).
        neg_indices: Indices into `candidates` of the sampled negatives (increasing).
        candidates: The candidate boxes sampled from; ground-truth boxes first when they were added.
        pos_gt_boxes: `(P, 4)` ground-truth box of each positive.
        pos_gt_labels: `(P,)` class of each positive.
        pos_gt_indices: `(P,)` index of each positive's ground-truth object (mmdetection's `pos_assigned_gt_inds`:
            which object's mask is its mask target).
        num_gt_candidates: How many ground-truth boxes were put in front of the candidates (0 when none were).
    """

    pos_indices: torch.Tensor
    neg_indices: torch.Tensor
    candidates: torch.Tensor
    pos_gt_boxes: torch.Tensor
    pos_gt_labels: torch.Tensor
    pos_gt_indices: torch.Tensor
    num_gt_candidates: int = 0

    @property
    def pos_is_gt(self) -> torch.Tensor:
        """`(P,)` whether each positive is an added ground-truth box (mmdetection's `pos_is_gt`)."""
        return self.pos_indices < self.num_gt_candidates

    @property
    def pos_boxes(self) -> torch.Tensor:
        return self.candidates[self.pos_indices]

    @property
    def neg_boxes(self) -> torch.Tensor:
        return self.candidates[self.neg_indices]

    @property
    def num_samples(self) -> int:
        """Positives plus negatives: mmdetection's `avg_factor` of a sampled loss."""
        return int(self.pos_indices.numel() + self.neg_indices.numel())


class RandomSampler:
    """Samples up to `num * pos_fraction` positives at random, then fills up to `num` with negatives.

    Randomness comes from `torch.randperm` on the CPU (the global generator unless one is given), as in
    mmdetection, so `torch.manual_seed` makes training repeatable.

    Args:
        num: Samples per image.
        pos_fraction: Largest share of positives.
        add_gt_as_proposals: Put the ground-truth boxes in front of the candidates (as sure positives).
        generator: Random generator for the draws; `None` uses PyTorch's global one.
    """

    def __init__(
        self,
        num: int,
        pos_fraction: float,
        add_gt_as_proposals: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        self.num = num
        self.pos_fraction = pos_fraction
        self.add_gt_as_proposals = add_gt_as_proposals
        self.generator = generator

    def _random_choice(self, pool: torch.Tensor, count: int) -> torch.Tensor:
        permutation = torch.randperm(pool.numel(), generator=self.generator)[:count].to(pool.device)
        return pool[permutation]

    def _draw(self, pool: torch.Tensor, count: int) -> torch.Tensor:
        if pool.numel() <= count:
            return pool
        return self._random_choice(pool, count)

    def sample(
        self,
        assign_result: AssignResult,
        candidates: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_labels: torch.Tensor,
    ) -> SamplingResult:
        """Sample from `candidates` `(N, 4)` given their assignment to `gt_boxes` `(K, 4)` / `gt_labels`."""
        num_gt_candidates = 0
        if self.add_gt_as_proposals and gt_boxes.size(0) > 0:
            candidates = torch.cat([gt_boxes.to(candidates.dtype), candidates], dim=0)
            assign_result.prepend_ground_truth(gt_labels)
            num_gt_candidates = gt_boxes.size(0)

        positives = torch.nonzero(assign_result.gt_indices > 0, as_tuple=False).view(-1)
        pos_indices = self._draw(positives, int(self.num * self.pos_fraction)).unique()
        negatives = torch.nonzero(assign_result.gt_indices == 0, as_tuple=False).view(-1)
        neg_indices = self._draw(negatives, self.num - pos_indices.numel()).unique()

        assigned_gt = assign_result.gt_indices[pos_indices] - 1
        pos_gt_boxes = gt_boxes[assigned_gt] if gt_boxes.size(0) > 0 else gt_boxes.new_zeros((0, 4))
        return SamplingResult(
            pos_indices=pos_indices,
            neg_indices=neg_indices,
            candidates=candidates,
            pos_gt_boxes=pos_gt_boxes,
            pos_gt_labels=assign_result.labels[pos_indices],
            pos_gt_indices=assigned_gt,
            num_gt_candidates=num_gt_candidates,
        )
