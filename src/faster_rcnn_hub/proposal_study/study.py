"""`faster-rcnn-hub proposals-study`: the Faster R-CNN paper's claim that the RPN gives better proposals than
selective search, in less time, measured on a data set here.

Two parts, both written to `OUTPUT/proposal_study.json`, drawn as PNG plots and summed up in `OUTPUT/report.md`:

1. Proposals. For the RPN of a Faster R-CNN and for selective search (OpenCV, fast and quality modes), on every
   image of the evaluation set: recall against the ground truth at IoU 0.5 to 0.95 for the first 100, 300, 1000
   and 2000 proposals of each image, average recall (mean over IoU 0.5:0.95), and milliseconds per image.
2. Detection. A Fast R-CNN trained on selective-search proposals (fast mode, first 2000 per image, as in the
   paper) against the Faster R-CNN trained with its RPN (300 proposals at test time): same architecture, recipe,
   seed and training data, evaluated on the same held-out images (COCO AP, AP50, end-to-end time per image).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.synthetic import SHAPE_CLASSES, SyntheticSpec, write_dataset
from ..default_model import default_model_dir
from ..errors import FasterRCNNHubError
from ..evaluation.proposal_recall import proposal_recall
from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection
from ..proposals.proposal_file import ProposalSet
from ..threads import thread_count
from ..training.data import CocoDetectionDataset
from ..training.default_recipe import HELD_OUT_IMAGES, HELD_OUT_SEED, IMAGE_SIZE, TRAIN_IMAGES, TRAIN_SEED
from .detectors import FAST_RCNN, FASTER_RCNN, Schedule, evaluate_detector, train_detector
from .measure import TimedProposals, rpn_proposals, selective_search_proposals
from .plots import draw_plots, require_matplotlib
from .report import REPORT_FILE, render_report, update_model_card

RESULT_FILE = "proposal_study.json"
PROPOSAL_BUDGETS = (100, 300, 1000, 2000)
REPORTED_IOUS = (0.5, 0.7)
# Selective-search proposals a Fast R-CNN trains and detects on (the paper's 2000, fast mode).
FAST_RCNN_PROPOSALS = 2000
FAST_RCNN_MODE = "fast"
METHODS = ("rpn", "selective_search_fast", "selective_search_quality")
METHOD_LABELS = {
    "rpn": "RPN",
    "selective_search_fast": "selective search (fast)",
    "selective_search_quality": "selective search (quality)",
}


@dataclass(frozen=True)
class StudySize:
    """How big a run is: synthetic images drawn, training length."""

    train_images: int
    held_out_images: int
    schedule: Schedule


# The full run: the default model's data and recipe (its Faster R-CNN is the bundled default model).
FULL = StudySize(TRAIN_IMAGES, HELD_OUT_IMAGES, Schedule(max_steps=2400, batch_size=8, warmup_steps=50, save_every=250))
# `--small`: a few minutes on 2 CPU cores; the detectors barely learn, the numbers only show the run works.
SMALL = StudySize(24, 6, Schedule(max_steps=12, batch_size=4, warmup_steps=2, save_every=6))


@dataclass
class StudySettings:
    """The options of `faster-rcnn-hub proposals-study`.

    Args:
        output_dir: Where everything goes (data drawn, proposals, detectors, JSON, plots, report).
        annotations: COCO file of the evaluation set (default: the synthetic held-out set, drawn).
        images: Its image folder.
        model: The Faster R-CNN whose RPN the proposal part measures (default: the comparison's Faster R-CNN, or
            the bundled default model without the comparison).
        train_annotations: COCO file of the comparison's training set (default: the synthetic training set).
        train_images: Its image folder.
        small: The `--small` size (tests, trying it out).
        synthetic_train_images: Synthetic training images (default: the default model's 4000; `--small`: 24).
        synthetic_held_out_images: Synthetic held-out images, the first of the default model's held-out set
            (default 250).
        max_steps: Training steps of each detector (default: the recipe's 2400).
        workers: Processes running selective search over the training set.
        detection: Run the detection comparison (training two detectors); `False` measures proposals only.
        retrain_faster_rcnn: Train the Faster R-CNN even where the bundled default model is the recipe's result.
        threads: PyTorch and OpenCV threads.
        device: Where the networks run (selective search runs on the CPU).
        progress_bar: Show progress bars.
        model_card: A model card (`README.md`) to put the result tables into (its proposal-study section).
        command: The command line, quoted in the report.
    """

    output_dir: Path
    annotations: Path | None = None
    images: Path | None = None
    model: Path | None = None
    train_annotations: Path | None = None
    train_images: Path | None = None
    small: bool = False
    synthetic_train_images: int | None = None
    synthetic_held_out_images: int | None = None
    max_steps: int | None = None
    workers: int = 1
    detection: bool = True
    retrain_faster_rcnn: bool = False
    threads: int = 1
    device: str = "cpu"
    progress_bar: bool = True
    model_card: Path | None = None
    command: str = "faster-rcnn-hub proposals-study"

    def size(self) -> StudySize:
        """The run's size: `--small` or the full one, with any count given explicitly."""
        size = SMALL if self.small else FULL
        schedule = size.schedule if self.max_steps is None else replace(size.schedule, max_steps=self.max_steps)
        return StudySize(
            train_images=self.synthetic_train_images or size.train_images,
            held_out_images=self.synthetic_held_out_images or size.held_out_images,
            schedule=schedule,
        )

    def validate(self) -> None:
        for first, second in (("annotations", "images"), ("train_annotations", "train_images")):
            if (getattr(self, first) is None) != (getattr(self, second) is None):
                raise FasterRCNNHubError(
                    f"Give both --{first.replace('_', '-')} and --{second.replace('_', '-')}, or neither."
                )
        if self.train_annotations is not None and not self.detection:
            raise FasterRCNNHubError("--train-annotations is for the detection comparison, which --proposals-only skips.")
        if self.train_annotations is not None and self.annotations is None:
            raise FasterRCNNHubError(
                "With your own training set (--train-annotations), give its held-out set too (--annotations, --images)."
            )
        for name in ("threads", "workers", "synthetic_train_images", "synthetic_held_out_images", "max_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FasterRCNNHubError(f"--{name.replace('_', '-')} must be at least 1, got {value}.")
        if self.model_card is not None and not Path(self.model_card).is_file():
            raise FasterRCNNHubError(f"--model-card: {self.model_card} is not a file.")


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _machine() -> dict[str, Any]:
    import cv2

    return {
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "opencv": cv2.__version__,
        "python": platform.python_version(),
    }


def _synthetic_set(folder: Path, count: int, seed: int, say: Callable[[str], None]) -> tuple[Path, Path]:
    """The first `count` images of the synthetic set with this seed (image i depends only on seed and i), drawn
    into `folder` unless an earlier run drew exactly these."""
    annotations = folder / "annotations.json"
    if not annotations.is_file() or len(json.loads(annotations.read_text(encoding="utf-8"))["images"]) != count:
        say(f"Drawing {count} synthetic images (seed {seed}) into {folder}")
        write_dataset(folder, count, seed, SyntheticSpec(image_size=(IMAGE_SIZE, IMAGE_SIZE)), overwrite=True)
    return folder / "annotations.json", folder / "images"


def _objects(sample: dict[str, Any]) -> np.ndarray:
    """Ground-truth boxes of a data set sample (x1, y1, x2, y2), crowd boxes left out, as the recall counts them."""
    boxes = [
        [x, y, x + width, y + height]
        for x, y, width, height in (
            annotation["bbox"] for annotation in sample["annotations"]["annotations"] if not annotation.get("iscrowd", 0)
        )
    ]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _search_one(job: tuple[CocoDetectionDataset, int, str, int]) -> TimedProposals:
    dataset, index, mode, max_proposals = job
    return selective_search_proposals(dataset[index]["image"], mode, max_proposals)


def selective_search_set(
    dataset: CocoDetectionDataset, mode: str, max_proposals: int, path: Path, progress_bar: bool, workers: int = 1
) -> ProposalSet:
    """Selective-search proposals of every image of `dataset` (on `workers` processes), kept in `path`; an earlier
    complete file is reused."""
    if path.is_file():
        cached = ProposalSet.load(path)
        if cached.covers([image["id"] for image in dataset.images]):
            return cached
    from tqdm.auto import tqdm

    jobs = [(dataset, index, mode, max_proposals) for index in range(len(dataset))]
    timed = []
    with tqdm(total=len(jobs), desc=f"selective search ({mode})", unit="image", disable=not progress_bar) as bar:
        with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
            results = pool.map(_search_one, jobs, chunksize=8) if pool is not None else map(_search_one, jobs)
            for result in results:
                timed.append(result)
                bar.update(1)
    image_ids = [image["id"] for image in dataset.images]
    proposal_set = ProposalSet(
        boxes={image_id: item.boxes for image_id, item in zip(image_ids, timed)},
        method=f"selective-search-{mode}",
        seconds={image_id: item.seconds for image_id, item in zip(image_ids, timed)},
    )
    proposal_set.save(path)
    return proposal_set


def measure_proposals(
    model_dir: Path, dataset: CocoDetectionDataset, output_dir: Path, progress_bar: bool, device: str = "cpu"
) -> tuple[dict[str, Any], ProposalSet]:
    """Part 1: recall and time of each method on `dataset`; also returns selective search's fast-mode set (the Fast
    R-CNN's test proposals)."""
    from tqdm.auto import tqdm

    model = FasterRCNNForObjectDetection.from_pretrained(str(model_dir)).to(device).eval()
    if model.config.proposal_source != "rpn":
        raise FasterRCNNHubError(f"{model_dir} has no trained RPN (proposal_source 'external'); pass a Faster R-CNN.")
    processor = FasterRCNNImageProcessor.from_pretrained(str(model_dir))
    largest = max(PROPOSAL_BUDGETS)
    measured: dict[str, list[TimedProposals]] = {method: [] for method in METHODS}
    objects = []
    for index in tqdm(range(len(dataset)), desc="proposals", unit="image", disable=not progress_bar):
        sample = dataset[index]
        image = sample["image"]
        objects.append(_objects(sample))
        measured["rpn"].append(rpn_proposals(model, processor, image, largest))
        for mode in ("fast", "quality"):
            measured[f"selective_search_{mode}"].append(selective_search_proposals(image, mode, largest))
    image_ids = [image["id"] for image in dataset.images]
    fast = ProposalSet(
        boxes={image_id: timed.boxes for image_id, timed in zip(image_ids, measured["selective_search_fast"])},
        method="selective-search-fast",
        seconds={image_id: timed.seconds for image_id, timed in zip(image_ids, measured["selective_search_fast"])},
    )
    fast.save(output_dir / "proposals" / "eval-selective-search-fast.npz")
    methods = {}
    for method, timed in measured.items():
        table = proposal_recall(objects, [item.boxes for item in timed], PROPOSAL_BUDGETS)
        entry = {
            "label": METHOD_LABELS[method],
            **asdict(table),
            "recall_at": {
                f"{budget}@{iou}": round(table.at(budget, iou), 4) for budget in PROPOSAL_BUDGETS for iou in REPORTED_IOUS
            },
            "ms_per_image": round(1000 * float(np.mean([item.seconds for item in timed])), 2),
        }
        if method == "rpn":
            entry["rpn_only_ms_per_image"] = round(1000 * float(np.mean([item.own_seconds for item in timed])), 2)
        methods[method] = entry
    result = {
        "model": str(model_dir),
        "rpn_settings": {"nms_iou_threshold": model.config.rpn_nms_iou_threshold, "nms_pre_per_level": largest,
                         "max_per_image": largest},  # fmt: skip
        "images": len(dataset),
        "objects": methods["rpn"]["num_objects"],
        "methods": methods,
    }
    return result, fast


def run_proposal_study(settings: StudySettings, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the study (see the module docstring); returns what it writes to `OUTPUT/proposal_study.json`, next to
    the plots and `report.md`."""
    settings.validate()
    require_matplotlib()  # before hours of work, not after
    with thread_count(settings.threads, opencv=True):
        return _run_study(settings, say)


def _run_study(settings: StudySettings, say: Callable[[str], None]) -> dict[str, Any]:
    size = settings.size()
    output = Path(settings.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    wall_start, load_at_start = time.perf_counter(), _load_average()

    synthetic = settings.annotations is None
    if synthetic:
        annotations, images = _synthetic_set(output / "data" / "held-out", size.held_out_images, HELD_OUT_SEED, say)
    else:
        annotations, images = Path(settings.annotations), Path(settings.images)
    default_training_set = settings.train_annotations is None
    if default_training_set:
        train_annotations, train_images = None, None
        class_names: list[str] = list(SHAPE_CLASSES)
    else:
        train_annotations, train_images = Path(settings.train_annotations), Path(settings.train_images)
        class_names = CocoDetectionDataset(train_annotations, train_images).class_names
    eval_set = CocoDetectionDataset(annotations, images, class_names)

    result: dict[str, Any] = {
        "settings": {
            "evaluation_set": str(annotations),
            "small": settings.small,
            "synthetic_train_images": size.train_images,
            "synthetic_held_out_images": size.held_out_images,
            "threads": settings.threads,
            "device": settings.device,
            "budgets": list(PROPOSAL_BUDGETS),
        },
        "machine": _machine(),
    }
    detectors: dict[str, Any] = {}
    faster_dir: Path | None = None
    if settings.detection:
        reuse_bundled = (
            default_training_set
            and (size.train_images, size.schedule) == (FULL.train_images, FULL.schedule)
            and not settings.retrain_faster_rcnn
        )
        if reuse_bundled:
            faster_dir = default_model_dir()
            detectors[FASTER_RCNN] = {
                "model": str(faster_dir),
                "trained_by": "the bundled default model: the same recipe, seed and training set (train-default)",
            }
        if default_training_set:
            train_annotations, train_images = _synthetic_set(output / "data" / "train", size.train_images, TRAIN_SEED, say)
        result["settings"]["training_set"] = str(train_annotations)

    model_dir = Path(settings.model) if settings.model else None
    if settings.detection and FASTER_RCNN not in detectors:
        train_set = CocoDetectionDataset(train_annotations, train_images, class_names, skip_empty=True)
        faster_dir = output / "faster-rcnn"
        detectors[FASTER_RCNN] = train_detector(
            FASTER_RCNN, faster_dir, class_names, train_set, size.schedule, settings.progress_bar, say, settings.device
        )
    if model_dir is None:
        model_dir = faster_dir if faster_dir is not None else default_model_dir()

    say(f"Proposals on {len(eval_set)} images of {annotations}: RPN of {model_dir}, selective search fast and quality")
    result["proposals"], eval_fast = measure_proposals(
        model_dir, eval_set, output, settings.progress_bar, settings.device
    )
    # Kept at once: the detection part takes far longer, and an interrupted run keeps the proposal results.
    _write_result(output, result, settings.command, wall_start, load_at_start)

    if settings.detection:
        train_proposals = selective_search_set(
            CocoDetectionDataset(train_annotations, train_images, class_names, skip_empty=True),
            FAST_RCNN_MODE, FAST_RCNN_PROPOSALS, output / "proposals" / f"train-selective-search-{FAST_RCNN_MODE}.npz",
            settings.progress_bar, settings.workers,
        )  # fmt: skip
        train_set = CocoDetectionDataset(train_annotations, train_images, class_names, True, train_proposals)
        detectors[FAST_RCNN] = train_detector(
            FAST_RCNN, output / "fast-rcnn", class_names, train_set, size.schedule, settings.progress_bar, say,
            settings.device,
        )
        detectors[FAST_RCNN]["proposals"] = f"selective search ({FAST_RCNN_MODE}), first {FAST_RCNN_PROPOSALS}"
        detectors[FASTER_RCNN]["proposals"] = "its RPN (test-time settings of the model)"
        eval_with_proposals = CocoDetectionDataset(annotations, images, class_names, proposals=eval_fast)
        search_seconds = float(np.mean(list(eval_fast.seconds.values())))
        say(f"Evaluating both detectors on {len(eval_set)} images")
        device = torch.device(settings.device)
        detectors[FASTER_RCNN] |= evaluate_detector(Path(detectors[FASTER_RCNN]["model"]), eval_set, 0.0, device)
        detectors[FAST_RCNN] |= evaluate_detector(output / "fast-rcnn", eval_with_proposals, search_seconds, device)
        result["detection"] = {
            "training_set": str(train_annotations),
            "evaluation_set": str(annotations),
            "schedule": asdict(size.schedule),
            "detectors": detectors,
        }

    _write_result(output, result, settings.command, wall_start, load_at_start)
    write_report(output, settings.model_card)
    return result


def _write_result(
    output_dir: Path, result: dict[str, Any], command: str, wall_start: float, load_at_start: list[float] | None
) -> None:
    result["wall_minutes"] = round((time.perf_counter() - wall_start) / 60, 2)
    result["load_average"] = {"start": load_at_start, "end": _load_average()}
    result["command"] = command
    temporary = output_dir / f".tmp-{RESULT_FILE}"
    temporary.write_text(json.dumps(result, indent=2), encoding="utf-8")
    os.replace(temporary, output_dir / RESULT_FILE)


def write_report(output_dir: Path, model_card: Path | None = None) -> dict[str, Any]:
    """Draw the plots and write `report.md` (and the model card's section) from `OUTPUT/proposal_study.json`: what a
    run does at its end, and `--redraw` does again for a finished run."""
    output_dir = Path(output_dir)
    path = output_dir / RESULT_FILE
    if not path.is_file():
        raise FasterRCNNHubError(f"{path} not found: run the study into {output_dir} first.")
    result = json.loads(path.read_text(encoding="utf-8"))
    draw_plots(result, output_dir)
    report = render_report(result, result["command"])
    (output_dir / REPORT_FILE).write_text(report, encoding="utf-8")
    if model_card is not None:
        update_model_card(Path(model_card), report)
    return result


__all__ = ["FULL", "PROPOSAL_BUDGETS", "RESULT_FILE", "SMALL", "StudySettings", "run_proposal_study", "write_report"]
