"""The training loop behind `faster-rcnn-hub train`: schedules, periodic evaluation, checkpoints and resume.

Runs are repeatable: the data order and the flips of each step are derived from the seed and the step, and the
global random state (which drives mmdetection's random samplers) is saved in every checkpoint, so that
resuming from a checkpoint continues exactly as the uninterrupted run would have (bit for bit on the CPU).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import FasterRCNNHubError, InvalidAnnotationError
from ..models.faster_rcnn.batching import crop_to_batch_padding
from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection
from ..models.faster_rcnn.training_settings import TrainingSettings
from .checkpoint import (
    latest_checkpoint,
    load_checkpoint_states,
    remove_stale_temporaries,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    write_folder_atomically,
)
from .data import CocoDetectionDataset, DetectionDataCollator
from .data_parallel import (
    TrainingStep,
    max_over_processes,
    pad_to,
    share_bounds,
    skip_flip_draws,
    sum_over_processes,
)
from .detection_loss import detection_losses, parse_labels, training_proposals
from .optim import build_lr_scheduler, build_optimizer
from .schedules import (
    EXTERNAL_PROPOSALS_STAGE,
    SHARED_PARTS,
    TrainingStage,
    enter_training_mode,
    schedule_stages,
    set_trainable_parts,
)

LOG_FILE = "training_log.json"
ALTERNATING_DIR = "alternating"


@dataclass
class TrainingOptions:
    """How to train (the `faster-rcnn-hub train` options). Defaults are mmdetection's 1x schedule.

    Args:
        output_dir: Folder of the run: checkpoints, log, and the final model.
        schedule: `"joint"` (end to end) or `"alternating"` (the paper's four steps; each step runs the
            full length below).
        epochs: Passes over the training set (per step of the alternating schedule).
        max_steps: Optimiser steps instead of `epochs` (per step of the alternating schedule).
        batch_size: Images per step.
        optimizer: `"sgd"` or `"adamw"`.
        learning_rate: Base learning rate (mmdetection: 0.02 for 16 images a batch; scale linearly).
        momentum: SGD momentum.
        weight_decay: Weight decay.
        decay_norms_and_biases: Apply weight decay to BatchNorm weights and biases too (mmdetection's default).
        lr_schedule: `"step"` (decay by `gamma` at `lr_steps`) or `"cosine"`.
        lr_steps: When to decay, in epochs (or in steps with `max_steps`); default 8/12 and 11/12 of the run.
        gamma: Decay factor of the step schedule.
        warmup_steps: Linear warm-up length, in steps.
        warmup_ratio: Learning-rate factor at the first step.
        max_grad_norm: Clip gradients to this norm (off when `None`, as in mmdetection's Faster R-CNN).
        flip_probability: Random horizontal flip of training images.
        eval_every: Evaluate on the validation set every this many steps (default: every epoch).
        save_every: Write a checkpoint every this many steps (default: every epoch).
        keep_checkpoints: Checkpoints kept (the newest).
        log_every: Steps per log record.
        seed: Seed of the data order, flips and random sampling.
        eval_batch_size: Images per forward pass when evaluating.
        progress_bar: Show a progress bar.
    """

    output_dir: str
    schedule: str = "joint"
    epochs: int = 12
    max_steps: int | None = None
    batch_size: int = 2
    optimizer: str = "sgd"
    learning_rate: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    decay_norms_and_biases: bool = True
    lr_schedule: str = "step"
    lr_steps: list[float] | None = None
    gamma: float = 0.1
    warmup_steps: int = 500
    warmup_ratio: float = 0.001
    max_grad_norm: float | None = None
    flip_probability: float = 0.5
    eval_every: int | None = None
    save_every: int | None = None
    keep_checkpoints: int = 2
    log_every: int = 20
    seed: int = 0
    eval_batch_size: int = 4
    progress_bar: bool = True

    def validate(self) -> None:
        schedule_stages(self.schedule)
        for name in ("epochs", "batch_size", "log_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise FasterRCNNHubError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("max_steps", "eval_every", "save_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FasterRCNNHubError(f"{name} must be at least 1, got {value}.")
        if self.learning_rate <= 0:
            raise FasterRCNNHubError(f"The learning rate must be positive, got {self.learning_rate}.")
        if not 0 <= self.flip_probability <= 1:
            raise FasterRCNNHubError(f"The flip probability must lie in [0, 1], got {self.flip_probability}.")
        if self.warmup_steps < 0 or not 0 < self.warmup_ratio <= 1:
            raise FasterRCNNHubError("warmup_steps must be >= 0 and warmup_ratio in (0, 1].")


@dataclass
class TrainerState:
    """Progress of a run, saved with every checkpoint."""

    global_step: int = 0
    stage_index: int = 0
    stage_step: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    log: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (seed, stage, epoch, step...)."""
    return int(np.random.SeedSequence([int(part) for part in parts]).generate_state(2, dtype=np.uint64)[0] >> 1)


def check_segmentations(dataset: CocoDetectionDataset) -> None:
    """Refuse, before any step, a training set in which an object has no `segmentation` (a Mask R-CNN needs one
    for every object)."""
    missing = dataset.annotations_without_segmentation()
    if missing:
        raise InvalidAnnotationError(
            f"The model is a Mask R-CNN (config.mask_head) and learns each object's mask, but {len(missing)} "
            f"annotation(s) of {dataset.annotation_file} have no segmentation (ids {missing[:5]}"
            f"{', ...' if len(missing) > 5 else ''}): give every object a segmentation (polygons or RLE; "
            "faster-rcnn-hub synth writes them), or train a model without a mask head."
        )


def move_batch(batch: Any, device: torch.device) -> dict[str, Any]:
    """The collator's batch on `device` (labels and proposals included)."""
    moved = {key: value.to(device) for key, value in batch.items() if isinstance(value, torch.Tensor)}
    if "proposals" in batch:
        moved["proposals"] = [boxes.to(device) for boxes in batch["proposals"]]
    if "labels" in batch:
        moved["labels"] = [
            {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in target.items()}
            for target in batch["labels"]
        ]
    return moved


class DetectionTrainer:
    """Trains a `FasterRCNNForObjectDetection` on a `CocoDetectionDataset`.

    Args:
        model: The detector (its classes must be the data set's).
        processor: Its image processor (saved with every checkpoint).
        train_dataset: Training images and annotations.
        options: How to train.
        eval_dataset: Validation set for periodic COCO evaluation.
        extra_state: Extra JSON facts saved in every checkpoint's state and in the log (e.g. how the run
            was started).
        accelerator: accelerate's `Accelerator` of a multi-process run (`accelerate launch`): each process then
            trains on `options.batch_size` images of a global batch of `batch_size x num_processes`, with
            gradients averaged by DDP, and the main process alone logs, evaluates and saves. `None`: one process.
    """

    def __init__(
        self,
        model: FasterRCNNForObjectDetection,
        processor: Any,
        train_dataset: CocoDetectionDataset,
        options: TrainingOptions,
        eval_dataset: CocoDetectionDataset | None = None,
        extra_state: dict[str, Any] | None = None,
        accelerator: Any | None = None,
    ) -> None:
        options.validate()
        if len(train_dataset) == 0:
            raise FasterRCNNHubError("The training set has no image with a usable annotation.")
        self.model = model
        self.processor = processor
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.options = options
        self.extra_state = extra_state or {}
        self.output_dir = Path(options.output_dir)
        self.device = next(model.parameters()).device
        self.accelerator = accelerator if accelerator is not None and accelerator.num_processes > 1 else None
        self.num_processes = self.accelerator.num_processes if self.accelerator is not None else 1
        self.process_index = self.accelerator.process_index if self.accelerator is not None else 0
        self.is_main_process = self.process_index == 0
        # Whether this process's images of the current step count (0 for a stand-in image, see data_parallel).
        self._share_weight = 1.0
        self.stages = self._stages(model, options, train_dataset, eval_dataset)
        # A Mask R-CNN learns its masks from the objects' segmentations, in the input frame with the boxes.
        with_masks = model.config.mask_head is not None
        if with_masks:
            check_segmentations(train_dataset)
        self.collator = DetectionDataCollator(
            processor, train_dataset.category_id_to_label, random_flip_probability=options.flip_probability,
            with_masks=with_masks,
        )  # fmt: skip
        self.global_batch_size = options.batch_size * self.num_processes
        self.steps_per_epoch = math.ceil(len(train_dataset) / self.global_batch_size)
        self.state = TrainerState()
        self.on_log: Callable[[dict[str, Any]], None] | None = None

    @staticmethod
    def _stages(
        model: FasterRCNNForObjectDetection,
        options: TrainingOptions,
        train_dataset: CocoDetectionDataset,
        eval_dataset: CocoDetectionDataset | None,
    ) -> tuple[TrainingStage, ...]:
        """The schedule's stages; a Fast R-CNN (external proposals) has its own, and needs proposals in the data."""
        external = model.config.proposal_source == "external"
        if model.config.cascade_stages is not None and options.schedule != "joint":
            raise FasterRCNNHubError(
                f"The '{options.schedule}' schedule is the Faster R-CNN paper's and is not implemented for a Cascade "
                "R-CNN (config.cascade_stages); train it end to end with the joint schedule."
            )
        if not external:
            if getattr(train_dataset, "proposals", None) is not None:
                raise FasterRCNNHubError(
                    "The training set has proposals, but the model makes its own (config.proposal_source='rpn'); "
                    "set proposal_source='external' to train a Fast R-CNN on them."
                )
            return schedule_stages(options.schedule)
        if options.schedule != "joint":
            raise FasterRCNNHubError(
                f"A Fast R-CNN (config.proposal_source='external') has no RPN to train: the '{options.schedule}' "
                "schedule does not apply; use the joint one."
            )
        for name, dataset in (("training", train_dataset), ("validation", eval_dataset)):
            if dataset is not None and getattr(dataset, "proposals", None) is None:
                raise FasterRCNNHubError(
                    f"The model is a Fast R-CNN (config.proposal_source='external'): the {name} set needs proposals "
                    "(CocoDetectionDataset(..., proposals=ProposalSet.load(FILE)))."
                )
        return (EXTERNAL_PROPOSALS_STAGE,)

    # ------------------------------------------------------------------ schedule arithmetic
    @property
    def steps_per_stage(self) -> int:
        if self.options.max_steps is not None:
            return self.options.max_steps
        return self.options.epochs * self.steps_per_epoch

    def milestones(self) -> list[int]:
        """Steps at which the step schedule decays the learning rate."""
        if self.options.lr_steps is None:
            return [round(self.steps_per_stage * 8 / 12), round(self.steps_per_stage * 11 / 12)]
        unit = 1 if self.options.max_steps is not None else self.steps_per_epoch
        return [round(value * unit) for value in self.options.lr_steps]

    def batch_indices(self, stage_index: int, stage_step: int) -> list[int]:
        """Images of a step (of all processes): a fresh permutation of the training set each epoch, from the
        seed."""
        epoch, position = divmod(stage_step, self.steps_per_epoch)
        generator = torch.Generator().manual_seed(derived_seed(self.options.seed, stage_index, epoch))
        order = torch.randperm(len(self.train_dataset), generator=generator).tolist()
        start = position * self.global_batch_size
        return order[start : start + self.global_batch_size]

    def make_batch(self, stage_index: int, stage_step: int) -> dict[str, Any]:
        """This process's images of a step, collated; with several processes, its contiguous share of the step's
        images, flipped as one process would flip them."""
        indices = self.batch_indices(stage_index, stage_step)
        flips = torch.Generator().manual_seed(derived_seed(self.options.seed, stage_index, stage_step, 1))
        if self.num_processes > 1:
            start, stop = share_bounds(len(indices), self.num_processes, self.process_index)
            skip_flip_draws(flips, start, self.options.flip_probability)
            self._share_weight = 1.0 if stop > start else 0.0
            indices = indices[start:stop] if stop > start else indices[:1]
        samples = [self.train_dataset[index] for index in indices]
        return move_batch(self.collator(samples, generator=flips), self.device)

    # ------------------------------------------------------------------ run
    def train(self, resume: bool = False) -> TrainerState:
        """Run the schedule to its end, from the start or from the newest checkpoint (`resume`)."""
        if self.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.output_dir)
        self._wait_for_everyone()
        training_state = None
        if resume:
            checkpoint = latest_checkpoint(self.output_dir)
            if checkpoint is None:
                raise FasterRCNNHubError(f"--resume: no checkpoint in {self.output_dir} to resume from.")
            training_state = self._restore(checkpoint)
        else:
            if self.num_processes > 1:
                # Each process draws its own anchor and RoI samples (the model itself is the main process's: DDP
                # broadcasts it).
                torch.manual_seed(derived_seed(self.options.seed, self.process_index, 2))
            if self.options.schedule == "alternating":
                self._save_part_weights("initial")

        progress = self._progress_bar()
        while self.state.stage_index < len(self.stages):
            stage = self.stages[self.state.stage_index]
            self._run_stage(stage, training_state, progress)
            training_state = None
        if progress is not None:
            progress.close()
        return self.state

    def _run_stage(self, stage: TrainingStage, training_state: dict | None, progress: Any) -> None:
        options = self.options
        model = self.model
        if stage.restart_shared_layers and self.state.stage_step == 0:
            self._load_part_weights("initial", SHARED_PARTS)
        proposal_network = self._proposal_network() if stage.fixed_proposals else None
        set_trainable_parts(model, stage)
        # DDP registers the parameters that learn when it wraps the model, so each stage gets its own wrapper.
        training_step = self.accelerator.prepare_model(TrainingStep(model)) if self.accelerator else None
        optimizer = build_optimizer(
            model, options.optimizer, options.learning_rate, options.momentum, options.weight_decay,
            options.decay_norms_and_biases,
        )
        scheduler = build_lr_scheduler(
            optimizer, self.steps_per_stage, options.warmup_steps, options.warmup_ratio, options.lr_schedule,
            self.milestones(), options.gamma,
        )  # fmt: skip
        if training_state is not None:
            optimizer.load_state_dict(training_state["optimizer"])
            scheduler.load_state_dict(training_state["scheduler"])
        window: list[dict[str, float]] = []
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        for stage_step in range(self.state.stage_step, self.steps_per_stage):
            enter_training_mode(model, stage)
            batch = self.make_batch(self.state.stage_index, stage_step)
            if training_step is None:
                losses = self._losses(batch, stage, proposal_network)
                loss_value, loss_terms = losses.loss, losses.loss_dict
                to_minimise = losses.loss
            else:
                to_minimise, loss_value, loss_terms = self._distributed_losses(training_step, batch, stage,
                                                                               proposal_network)  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            to_minimise.backward()
            if options.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(
                    [parameter for parameter in model.parameters() if parameter.requires_grad], options.max_grad_norm
                )
            optimizer.step()
            scheduler.step()
            if not math.isfinite(loss_value.item()):
                raise FasterRCNNHubError(
                    f"The loss became {loss_value.item()} at step {self.state.global_step + 1}; lower the "
                    "learning rate, lengthen the warm-up or set a gradient clip (--max-grad-norm)."
                )

            self.state.global_step += 1
            self.state.stage_step = stage_step + 1
            now_wall, now_cpu = time.perf_counter(), time.process_time()
            self.state.wall_seconds += now_wall - wall_start
            self.state.cpu_seconds += now_cpu - cpu_start
            wall_start, cpu_start = now_wall, now_cpu
            window.append({"loss": loss_value.item()} | {key: value.item() for key, value in loss_terms.items()})
            if progress is not None:
                progress.update(1)
                progress.set_postfix(stage=stage.name, loss=f"{window[-1]['loss']:.3f}",
                                     lr=f"{scheduler.get_last_lr()[0]:.2e}")  # fmt: skip
            stage_done = self.state.stage_step == self.steps_per_stage
            if len(window) == options.log_every or stage_done:
                self._log(stage, window, scheduler.get_last_lr()[0])
                window = []
            epoch_done = self.state.stage_step % self.steps_per_epoch == 0
            if self.eval_dataset is not None and (
                stage_done or (self.state.stage_step % options.eval_every == 0 if options.eval_every else epoch_done)
            ):
                self.evaluate(stage)
            if stage_done:
                if stage.name == "rpn" and options.schedule == "alternating" and self.state.stage_index == 0:
                    self._save_part_weights("step1")
                self.state.stage_index += 1
                self.state.stage_step = 0
            if stage_done or (self.state.stage_step % options.save_every == 0 if options.save_every else epoch_done):
                self.save(optimizer, scheduler)

    def _losses(self, batch: dict[str, Any], stage: TrainingStage, proposal_network: Any) -> Any:
        model = self.model
        pixel_values = crop_to_batch_padding(batch["pixel_values"], batch.get("padded_sizes"))
        image_sizes = batch["image_sizes"]
        ground_truth = parse_labels(batch["labels"], pixel_values.size(0), model.config.num_classes, self.device,
                                    with_masks=self.collator.with_masks)  # fmt: skip
        proposals = batch.get("proposals")
        if proposal_network is not None:
            proposals = proposals_of(proposal_network, pixel_values, image_sizes)
        features = model.fpn(model.backbone(pixel_values))
        return detection_losses(model, features, image_sizes, ground_truth, stage.losses, proposals)

    def _distributed_losses(
        self, training_step: Any, batch: dict[str, Any], stage: TrainingStage, proposal_network: Any
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(what this process back-propagates, the loss of the global batch, its terms): see `data_parallel`."""
        accelerator = self.accelerator
        pixel_values = crop_to_batch_padding(batch["pixel_values"], batch.get("padded_sizes"))
        local_size = torch.tensor(pixel_values.shape[-2:], device=self.device)
        height, width = max_over_processes(accelerator, local_size).tolist()
        pixel_values = pad_to(pixel_values, height, width)
        image_sizes = batch["image_sizes"]
        ground_truth = parse_labels(batch["labels"], pixel_values.size(0), self.model.config.num_classes, self.device,
                                    with_masks=self.collator.with_masks)  # fmt: skip
        proposals = batch.get("proposals")
        if proposal_network is not None:
            proposals = proposals_of(proposal_network, pixel_values, image_sizes)
        weight = self._share_weight

        def normalizer(local: float) -> float:
            contribution = torch.tensor([local * weight], dtype=torch.float64, device=self.device)
            return float(sum_over_processes(accelerator, contribution).item())

        loss, terms = training_step(pixel_values, image_sizes, ground_truth, stage.losses, proposals, normalizer)
        # DDP averages the processes' gradients; each term already divides by the global normaliser.
        to_minimise = loss * (self.num_processes * weight)
        names = list(terms)
        local = torch.stack([terms[name].detach() for name in names]).to(torch.float64) * weight
        totals = sum_over_processes(accelerator, local).to(loss.dtype)
        return to_minimise, totals.sum(), dict(zip(names, totals))

    def _wait_for_everyone(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    # ------------------------------------------------------------------ evaluation, logs, checkpoints
    def evaluate(self, stage: TrainingStage | None = None) -> dict[str, Any]:
        """COCO box AP and VOC mAP@0.5 on the validation set; recorded in the state and returned.

        With several processes the main process evaluates while the others wait (and get `{}`)."""
        if not self.is_main_process:
            self._wait_for_everyone()
            return {}
        from ..evaluation import coco_box_metrics, predict_coco_results, voc_mean_average_precision

        results = predict_coco_results(
            self.model, self.processor, self.eval_dataset, self.eval_dataset.label_to_category_id,
            batch_size=self.options.eval_batch_size,
        )  # fmt: skip
        metrics = coco_box_metrics(self.eval_dataset.coco, results)
        record: dict[str, Any] = {key: round(value, 4) for key, value in metrics.items() if key != "summary"}
        record["VOC_mAP50"] = round(voc_mean_average_precision(self.eval_dataset.coco, results)["mAP"], 4)
        record |= {
            "step": self.state.global_step,
            "stage": stage.name if stage else None,
            "images": len(self.eval_dataset),
            "summary": metrics["summary"],
        }
        self.state.evaluations.append(record)
        self._emit(dict(record, kind="evaluation"))
        self._wait_for_everyone()
        return record

    def _log(self, stage: TrainingStage, window: list[dict[str, float]], learning_rate: float) -> None:
        record = {key: round(float(np.mean([item[key] for item in window])), 5) for key in window[0]}
        record |= {
            "step": self.state.global_step,
            "stage": stage.name,
            "lr": learning_rate,
            "wall_s": round(self.state.wall_seconds, 1),
            "cpu_s": round(self.state.cpu_seconds, 1),
        }
        self.state.log.append(record)
        self._emit(dict(record, kind="train"))

    def _emit(self, record: dict[str, Any]) -> None:
        if self.on_log is not None and self.is_main_process:
            self.on_log(record)

    def save(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> Path:
        state = dataclasses.asdict(self.state) | {"options": dataclasses.asdict(self.options)} | self.extra_state
        training_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()}
        if self.accelerator is not None:
            from accelerate.utils import gather_object

            # Every process draws its own samples: keep each one's random state, for an exact resume.
            state["num_processes"] = self.num_processes
            training_state["rng_per_process"] = gather_object([rng_state()])
        path = self.output_dir / f"checkpoint-{self.state.global_step}"
        if self.is_main_process:
            path = save_checkpoint(
                self.output_dir, self.state.global_step, self.model, self.processor, training_state, state,
                keep=self.options.keep_checkpoints,
            )  # fmt: skip
        self._wait_for_everyone()
        return path

    def _restore(self, checkpoint: Path) -> dict[str, Any] | None:
        training_state, saved = load_checkpoint_states(checkpoint)
        if saved.get("options", {}).get("schedule") != self.options.schedule:
            raise FasterRCNNHubError(
                f"{checkpoint} is from a '{saved.get('options', {}).get('schedule')}' run; resume it with the same "
                "--schedule."
            )
        saved_processes = saved.get("num_processes", 1)
        if saved_processes != self.num_processes:
            raise FasterRCNNHubError(
                f"{checkpoint} was written by a run on {saved_processes} process(es); resume it on as many "
                f"(accelerate launch --num_processes {saved_processes}): each step's batch is --batch-size x processes "
                "images, so another count would change the run."
            )
        self.model.load_state_dict(load_file(str(checkpoint / "model.safetensors"), device=str(self.device)))
        fields = {item.name for item in dataclasses.fields(TrainerState)}
        self.state = TrainerState(**{key: value for key, value in saved.items() if key in fields})
        restore_rng_state(training_state.get("rng_per_process", [training_state["rng"]])[self.process_index])
        # A checkpoint written at the end of a stage holds that stage's optimizer; the next starts afresh.
        return training_state if self.state.stage_step > 0 else None

    def _progress_bar(self) -> Any:
        if not self.options.progress_bar or not self.is_main_process:
            return None
        from tqdm.auto import tqdm

        total = self.steps_per_stage * len(self.stages)
        return tqdm(total=total, initial=self.state.global_step, desc="training", unit="step", dynamic_ncols=True)

    # ------------------------------------------------------------------ alternating schedule
    def _part_weights_path(self, name: str) -> Path:
        return self.output_dir / ALTERNATING_DIR / f"{name}.safetensors"

    def _save_part_weights(self, name: str) -> None:
        if self.is_main_process:
            path = self._part_weights_path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".tmp-{path.name}")
            save_file({key: value.contiguous() for key, value in self.model.state_dict().items()}, str(temporary))
            os.replace(temporary, path)
        self._wait_for_everyone()

    def _load_part_weights(self, name: str, parts: Sequence[str]) -> None:
        weights = load_file(str(self._part_weights_path(name)), device=str(self.device))
        selected = {key: value for key, value in weights.items() if key.split(".")[0] in parts}
        self.model.load_state_dict(selected, strict=False)

    def _proposal_network(self) -> FasterRCNNForObjectDetection:
        """The frozen step-1 network, whose proposals step 2 trains on."""
        network = copy.deepcopy(self.model)
        network.load_state_dict(load_file(str(self._part_weights_path("step1")), device=str(self.device)))
        network.eval()
        network.requires_grad_(False)
        return network


@torch.no_grad()
def proposals_of(
    network: FasterRCNNForObjectDetection, pixel_values: torch.Tensor, image_sizes: torch.Tensor
) -> list[torch.Tensor]:
    """Train-time proposals of a (frozen) network for a batch."""
    features = network.fpn(network.backbone(pixel_values))
    objectness, box_deltas = network.rpn.head(features)
    anchors = network.rpn.anchor_generator.grid_anchors(
        [feature.shape[-2:] for feature in features], device=features[0].device, dtype=features[0].dtype
    )
    sizes = [(int(height), int(width)) for height, width in image_sizes.tolist()]
    settings = TrainingSettings.from_mapping(network.config.train_cfg)
    return training_proposals(network, objectness, box_deltas, anchors, sizes, settings)


def export_model(
    output_dir: str | os.PathLike,
    model: FasterRCNNForObjectDetection,
    processor: Any,
    model_card: str | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write the final model folder (`config.json`, `model.safetensors`, `preprocessor_config.json`, `README.md`)
    atomically: files are prepared aside and each moved into `output_dir` complete."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    staging = output / ".tmp-final"

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        if model_card is not None:
            (folder / "README.md").write_text(model_card, encoding="utf-8")
        for name, text in (extra_files or {}).items():
            (folder / name).write_text(text, encoding="utf-8")

    write_folder_atomically(staging, write)
    for item in staging.iterdir():
        os.replace(item, output / item.name)
    staging.rmdir()
    return output


def write_log(output_dir: str | os.PathLike, state: TrainerState, extra: dict[str, Any] | None = None) -> Path:
    path = Path(output_dir) / LOG_FILE
    path.write_text(json.dumps({"log": state.log, "evaluations": state.evaluations} | (extra or {}), indent=2))
    return path
