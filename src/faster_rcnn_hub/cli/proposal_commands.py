"""Proposals from outside the model: `selective-search` writes a proposal file for a data set (for `train` and
`evaluate --proposals`, a Fast R-CNN); `proposals-study` measures the RPN against selective search (proposal
recall, time, detection AP)."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from pathlib import Path

from ..errors import FasterRCNNHubError
from .arguments import positive_int


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add `selective-search` and `proposals-study` to `commands` (argparse subparsers); returns their handlers by
    name."""
    search = commands.add_parser(
        "selective-search",
        help="selective-search proposals of every image of a COCO data set, as a proposal file",
        description="Run selective search (OpenCV, fast or quality mode) on every image of a COCO detection file and "
        "write the ranked boxes, in original-image pixels, to a proposal file (.npz) for train --proposals and "
        "evaluate --proposals (a Fast R-CNN).",
    )
    search.add_argument("--annotations", required=True, help="COCO detection JSON")
    search.add_argument("--images", required=True, help="its image folder")
    search.add_argument("--output", required=True, help="proposal file to write (.npz)")
    search.add_argument("--mode", choices=("fast", "quality"), default="fast", help="default fast (as in the paper)")
    search.add_argument("--max-proposals", type=positive_int, default=2000, help="boxes kept per image (default 2000)")
    search.add_argument("--workers", type=positive_int, default=1, help="processes (default 1)")
    search.add_argument("--no-progress", action="store_true", help="no progress bar")

    study = commands.add_parser(
        "proposals-study",
        help="measure the RPN against selective search: proposal recall, time, and detection AP",
        description="Check the Faster R-CNN paper's claim on a data set: recall at IoU 0.5-0.95 of the first 100, "
        "300, 1000 and 2000 proposals per image for the RPN and for selective search (OpenCV, fast and quality "
        "modes), average recall and milliseconds per image; then a Fast R-CNN trained on selective search against "
        "the Faster R-CNN trained with its RPN (same recipe and data), AP, AP50 and end-to-end time. Writes "
        "OUTPUT/proposal_study.json, recall and time plots (PNG) and OUTPUT/report.md. Without data options it draws "
        "the default model's synthetic training and held-out sets, and the Faster R-CNN is the bundled default model "
        "(trained by that recipe on that set), so only the Fast R-CNN is trained (with selective search over the 4000 "
        "training images: about 65 min of CPU time, so 35 to 45 min wall on 2 idle cores; an interrupted run "
        "resumes).",
    )
    study.add_argument("--output", required=True, help="folder for the data drawn, proposals, detectors and results")
    study.add_argument("--annotations", help="COCO file of the evaluation set (default: the synthetic held-out set)")
    study.add_argument("--images", help="its image folder")
    study.add_argument("--model", help="Faster R-CNN whose RPN the proposal part measures (default: the comparison's)")
    study.add_argument("--train-annotations", help="COCO file of the detectors' training set (default: synthetic)")
    study.add_argument("--train-images", help="its image folder")
    study.add_argument("--small", action="store_true",
                       help="a few images and training steps: minutes on 2 CPU cores, to try the study out")  # fmt: skip
    study.add_argument("--synthetic-train-images", type=positive_int,
                       help="synthetic training images drawn (default 4000, the default model's; --small: 24)")
    study.add_argument("--synthetic-held-out-images", type=positive_int,
                       help="synthetic held-out images: the first N of the default model's 250 (--small: 6)")
    study.add_argument("--max-steps", type=positive_int, help="training steps of each detector (default 2400)")
    study.add_argument("--workers", type=positive_int, default=1,
                       help="processes running selective search over the training set (default 1)")
    study.add_argument("--proposals-only", action="store_true", help="skip the detection comparison (no training)")
    study.add_argument("--retrain-faster-rcnn", action="store_true",
                       help="train the Faster R-CNN too, instead of taking the bundled default model")  # fmt: skip
    study.add_argument("--model-card", help="a model card (README.md) to put the result tables into")
    study.add_argument("--redraw", action="store_true",
                       help="only redraw the plots and rewrite the report (and --model-card) of a finished run")
    study.add_argument("--threads", type=positive_int, default=1, help="PyTorch and OpenCV threads (default 1)")
    study.add_argument("--device", default="cpu", help="where the networks run: cpu (default), cuda, ...")
    study.add_argument("--no-progress", action="store_true", help="no progress bars")
    return {"selective-search": run_selective_search, "proposals-study": run_proposals_study}


def run_selective_search(args: argparse.Namespace) -> int:
    from ..proposal_study.study import selective_search_set
    from ..training.data import CocoDetectionDataset

    output = Path(args.output)
    if output.suffix != ".npz":
        raise FasterRCNNHubError(f"--output must name a .npz file, got {output}.")
    if output.exists():
        raise FasterRCNNHubError(f"{output} already exists; remove it or choose another --output.")
    dataset = CocoDetectionDataset(args.annotations, args.images, require_annotations=False)
    proposals = selective_search_set(dataset, args.mode, args.max_proposals, output, not args.no_progress, args.workers)
    counts = [len(boxes) for boxes in proposals.boxes.values()]
    print(f"Selective search ({args.mode}) on {len(dataset)} images: {sum(counts) / max(len(counts), 1):.0f} "
          f"proposals per image on average, written to {output}")  # fmt: skip
    return 0


def run_proposals_study(args: argparse.Namespace) -> int:
    from ..proposal_study import RESULT_FILE, StudySettings, run_proposal_study, write_report

    if args.redraw:
        write_report(Path(args.output), args.model_card and Path(args.model_card))
        print((Path(args.output) / "report.md").read_text(encoding="utf-8"))
        return 0

    settings = StudySettings(
        output_dir=Path(args.output),
        annotations=args.annotations and Path(args.annotations),
        images=args.images and Path(args.images),
        model=args.model and Path(args.model),
        train_annotations=args.train_annotations and Path(args.train_annotations),
        train_images=args.train_images and Path(args.train_images),
        small=args.small,
        synthetic_train_images=args.synthetic_train_images,
        synthetic_held_out_images=args.synthetic_held_out_images,
        max_steps=args.max_steps,
        workers=args.workers,
        detection=not args.proposals_only,
        retrain_faster_rcnn=args.retrain_faster_rcnn,
        threads=args.threads,
        device=args.device,
        progress_bar=not args.no_progress,
        model_card=args.model_card and Path(args.model_card),
        command=shlex.join(["faster-rcnn-hub", "proposals-study", *_given_options(args)]),
    )
    result = run_proposal_study(settings)
    print((Path(args.output) / "report.md").read_text(encoding="utf-8"))
    print(f"Results in {Path(args.output) / RESULT_FILE} ({result['wall_minutes']:.1f} min)")
    return 0


def _given_options(args: argparse.Namespace) -> list[str]:
    """The options given, as a command line (for the report)."""
    options = []
    for name, value in sorted(vars(args).items()):
        if name in ("command", "redraw") or value in (None, False):
            continue
        flag = "--" + name.replace("_", "-")
        options += [flag] if value is True else [flag, str(value)]
    return options


__all__ = ["add_commands", "run_proposals_study", "run_selective_search"]
