"""The `train`, `evaluate`, `synth` and `train-default` commands: training, evaluation and synthetic data."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import FasterRCNNHubError
from .arguments import add_runtime_arguments, positive_int


def _float_list(text: str) -> list[float]:
    try:
        return [float(item) for item in text.split(",") if item.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from error


def _scale(text: str) -> dict[str, int]:
    try:
        longest, shortest = (int(item) for item in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected LONGEST,SHORTEST (e.g. 1333,800), got {text!r}") from error
    return {"longest_edge": longest, "shortest_edge": shortest}


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add `train`, `evaluate`, `synth` and `train-default` to `commands` (argparse subparsers); returns their
    handlers by name."""
    train = commands.add_parser(
        "train",
        help="train or fine-tune a model on a COCO-format data set",
        description="Train a Faster R-CNN on a COCO detection file and an image folder, with mmdetection's recipe "
        "(SGD, warm-up, step decay). Checkpoints (Hub format) go to OUTPUT_DIR/checkpoint-STEP, the final model to "
        "OUTPUT_DIR. An interrupted run continues with --resume.",
    )
    train.add_argument("--annotations", help="COCO detection JSON of the training set")
    train.add_argument("--images", help="folder of the training images")
    train.add_argument("--val-annotations", help="COCO detection JSON of a validation set (optional)")
    train.add_argument("--val-images", help="folder of the validation images")
    train.add_argument("--proposals",
                       help="proposal file (.npz, `faster-rcnn-hub selective-search`) of the training images: trains a "
                       "Fast R-CNN on them instead of the model's RPN")  # fmt: skip
    train.add_argument("--val-proposals", help="proposal file of the validation images (with --proposals)")
    train.add_argument("--output-dir", required=True, help="folder of the run: checkpoints, log and final model")
    start = train.add_mutually_exclusive_group()
    start.add_argument("--model", help="model folder to fine-tune (converted or trained)")
    start.add_argument("--config", help="FasterRCNNConfig JSON for a new, randomly initialised model")
    train.add_argument("--mask-head-channels", type=positive_int, metavar="CHANNELS",
                       help="with --model: add a new mask head of CHANNELS channels (mmdetection's has 256) and train "
                       "a Mask R-CNN; every object of the training set needs a segmentation")
    train.add_argument("--scale", type=_scale, help="test scale LONGEST,SHORTEST of a new model (default 1333,800)")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUTPUT_DIR")
    train.add_argument("--schedule", choices=("joint", "alternating"), default="joint",
                       help="joint: end to end (default); alternating: the paper's four-step training")  # fmt: skip
    length = train.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_int, default=12, help="epochs (per alternating step; default 12)")
    length.add_argument("--max-steps", type=positive_int, help="optimiser steps instead of epochs")
    train.add_argument("--batch-size", type=positive_int, default=2, help="images per step (default 2)")
    train.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    train.add_argument("--lr", type=float, default=0.02, help="base learning rate (default 0.02)")
    train.add_argument("--momentum", type=float, default=0.9)
    train.add_argument("--weight-decay", type=float, default=1e-4)
    train.add_argument("--lr-schedule", choices=("step", "cosine"), default="step")
    train.add_argument("--lr-steps", type=_float_list,
                       help="decay points, in epochs (in steps with --max-steps); default 8/12 and 11/12 of the run")  # fmt: skip
    train.add_argument("--warmup-steps", type=int, default=500, help="linear warm-up steps (default 500)")
    train.add_argument("--max-grad-norm", type=float, help="clip gradients to this norm (default: no clipping)")
    train.add_argument("--flip", type=float, default=0.5, help="horizontal flip probability (default 0.5)")
    train.add_argument("--eval-every", type=positive_int, help="evaluate every N steps (default: every epoch)")
    train.add_argument("--save-every", type=positive_int, help="checkpoint every N steps (default: every epoch)")
    train.add_argument("--keep-checkpoints", type=int, default=2, help="checkpoints kept (default 2; 0 keeps all)")
    train.add_argument("--log-every", type=positive_int, default=20, help="steps per log line (default 20)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_runtime_arguments(train)

    evaluate = commands.add_parser(
        "evaluate",
        help="COCO box AP and VOC mAP@0.5 of a model on a COCO-format data set",
        description="Detect objects in every image of a COCO detection file, report COCO box AP (pycocotools) and "
        "Pascal VOC mAP@0.5, and optionally write the detections as a COCO results JSON.",
    )
    evaluate.add_argument("--model", help="model folder (default: the model bundled with the package)")
    evaluate.add_argument("--annotations", required=True, help="COCO detection JSON")
    evaluate.add_argument("--images", required=True, help="folder of the images")
    evaluate.add_argument("--proposals",
                          help="proposal file (.npz) of the images: the RoI head runs on these boxes (Fast R-CNN)")
    evaluate.add_argument("--results-json", help="write the detections here (COCO results format)")
    evaluate.add_argument("--metrics-json", help="write the metrics here")
    evaluate.add_argument("--overwrite", action="store_true",
                          help="replace a --results-json or --metrics-json file that evaluate did not write (never "
                          "the annotations file)")  # fmt: skip
    evaluate.add_argument("--batch-size", type=positive_int, default=4)
    add_runtime_arguments(evaluate)
    evaluate.add_argument(
        "--backend", choices=("torch", "onnxruntime", "openvino"), default="torch",
        help="torch (default), or onnxruntime / openvino with --model an export folder (faster-rcnn-hub export), "
        "float32 or INT8",
    )  # fmt: skip

    synth = commands.add_parser(
        "synth",
        help="write a synthetic detection data set (COCO format)",
        description="Coloured shapes (circle, square, triangle, star, cross) of many sizes, overlapping, on "
        "textured and cluttered backgrounds. Writes OUTPUT/images/ and OUTPUT/annotations.json; the same seed "
        "gives the same images.",
    )
    synth.add_argument("--num-images", type=positive_int, required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--output", required=True, help="folder to create")
    synth.add_argument("--image-size", type=positive_int, default=256, help="square image side (default 256)")
    synth.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")

    default = commands.add_parser(
        "train-default",
        help="train the package's default model on synthetic data (about 30 minutes on 2 CPU cores)",
        description="Generate the synthetic training and held-out sets, train the small default model with its "
        "fixed recipe, evaluate it on the held-out set and write the model folder with its model card.",
    )
    default.add_argument("--output-dir", required=True, help="where to write the model folder")
    default.add_argument("--work-dir", default="outputs/default-model-run",
                         help="data and checkpoints (default outputs/default-model-run)")  # fmt: skip
    default.add_argument("--overwrite", action="store_true", help="replace model files in OUTPUT_DIR")
    default.add_argument("--resume", action="store_true", help="continue an interrupted run in WORK_DIR")
    default.add_argument("--threads", type=positive_int, default=2, help="PyTorch CPU threads (default 2)")
    default.add_argument("--no-progress", action="store_true", help="no progress bar")
    return {"train": run_train, "evaluate": run_evaluate, "synth": run_synth, "train-default": run_train_default}


def _class_names(config: Any) -> list[str]:
    """The model's class names in label order."""
    return [config.id2label[label] for label in range(config.num_classes)]


def _setup_runtime(args: argparse.Namespace) -> Any:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    from ..detection.devices import check_device

    return check_device(getattr(args, "device", None))


def _printer(progress_bar: bool) -> Callable[[str], None]:
    if not progress_bar:
        return print
    from tqdm.auto import tqdm

    return tqdm.write


def _format_record(record: dict[str, Any]) -> str:
    if record.get("kind") == "evaluation":
        keys = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "VOC_mAP50")
        return f"[eval step {record['step']}] " + "  ".join(f"{key} {record[key]:.4f}" for key in keys if key in record)
    losses = "  ".join(f"{key} {value:.4f}" for key, value in record.items() if key.startswith("loss"))
    return f"[step {record['step']} {record['stage']}] {losses}  lr {record['lr']:.2e}"


def run_train(args: argparse.Namespace) -> int:
    from ..training.checkpoint import latest_checkpoint
    from ..training.data import CocoDetectionDataset
    from ..training.trainer import DetectionTrainer

    from ..output_files import check_writable_folder

    output_dir = Path(args.output_dir)
    check_writable_folder(output_dir, f"--output-dir {output_dir}")  # before hours of training, not after
    device = _setup_runtime(args)
    accelerator = _accelerator()
    if accelerator is not None:
        device = accelerator.device
    say = _main_process_print(accelerator)
    checkpoint = latest_checkpoint(output_dir)
    if args.resume:
        run = _resumed_run(args, output_dir, checkpoint, say)
    else:
        run = _new_run(args, output_dir, checkpoint, say)
    class_names = _class_names(run.model.config)
    train_set = CocoDetectionDataset(run.data["annotations"], run.data["images"], class_names, skip_empty=True,
                                     proposals=_proposal_set(run.data.get("proposals")))  # fmt: skip
    val_set = None
    if run.data.get("val_annotations"):
        val_set = CocoDetectionDataset(run.data["val_annotations"], run.data["val_images"], class_names,
                                       proposals=_proposal_set(run.data.get("val_proposals")))  # fmt: skip
    if accelerator is not None:
        per_process = run.options.batch_size
        say(f"Data-parallel training on {accelerator.num_processes} processes ({device.type}): {per_process} images "
            f"each, {per_process * accelerator.num_processes} a step.")  # fmt: skip
        if not run.model.config.backbone_norm_eval:
            say("note: the backbone's BatchNorm learns batch statistics (backbone_norm_eval is false); each process "
                "normalises with its own images, so the run differs from one process with the whole batch.")  # fmt: skip
    trainer = DetectionTrainer(
        run.model.to(device), run.processor, train_set, run.options, val_set,
        extra_state={"data": run.data, "notes": run.notes}, accelerator=accelerator,
    )  # fmt: skip
    trainer.on_log = lambda record: _printer(run.options.progress_bar)(_format_record(record))
    state = trainer.train(resume=args.resume)
    if not trainer.is_main_process:
        return 0
    _write_trained_model(output_dir, trainer, run, state, train_set, val_set)
    say(f"Trained {state.global_step} steps in {state.wall_seconds:.0f} s (CPU {state.cpu_seconds:.0f} s); model "
          f"written to {output_dir}")  # fmt: skip
    if state.evaluations:
        say(_format_record(dict(state.evaluations[-1], kind="evaluation")))
    return 0


@dataclasses.dataclass
class _TrainingRun:
    """What a `train` run starts from: the model and processor, its options, data paths and notes."""

    model: Any
    processor: Any
    options: Any
    data: dict[str, Any]
    notes: list[str]


def _resumed_run(
    args: argparse.Namespace, output_dir: Path, checkpoint: Path | None, say: Callable[..., None]
) -> _TrainingRun:
    """The run continued from its newest checkpoint, with the options it was started with."""
    from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
    from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection
    from ..training.trainer import TrainingOptions

    if checkpoint is None:
        raise FasterRCNNHubError(f"--resume: no checkpoint in {output_dir} to resume from.")
    saved = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    data = saved.get("data")
    if not data:
        raise FasterRCNNHubError(f"{checkpoint} does not record its training data; it was not written by train.")
    options = TrainingOptions(**saved["options"])
    options.progress_bar = not args.no_progress
    say(f"Resuming {output_dir} from {checkpoint.name} (step {saved['global_step']}); training options are "
          "the run's own.")  # fmt: skip
    return _TrainingRun(
        model=FasterRCNNForObjectDetection.from_pretrained(str(checkpoint)),
        processor=FasterRCNNImageProcessor.from_pretrained(str(checkpoint)),
        options=options,
        data=data,
        notes=saved.get("notes", []),
    )


def _new_run(
    args: argparse.Namespace, output_dir: Path, checkpoint: Path | None, say: Callable[..., None]
) -> _TrainingRun:
    """A run started from the command line's options, data and starting point."""
    from ..training.trainer import TrainingOptions

    if checkpoint is not None:
        raise FasterRCNNHubError(
            f"{output_dir} already holds a training run ({checkpoint.name}); pass --resume to continue it or "
            "choose another --output-dir."
        )
    if not args.annotations or not args.images:
        raise FasterRCNNHubError("train needs --annotations and --images (the training set).")
    if bool(args.val_annotations) != bool(args.val_images):
        raise FasterRCNNHubError("Give both --val-annotations and --val-images, or neither.")
    if args.proposals and args.val_annotations and not args.val_proposals:
        raise FasterRCNNHubError("A Fast R-CNN (--proposals) is validated on proposals too: give --val-proposals.")
    if args.val_proposals and not args.proposals:
        raise FasterRCNNHubError("--val-proposals goes with --proposals (training a Fast R-CNN).")
    data = {
        "annotations": str(args.annotations), "images": str(args.images),
        "val_annotations": args.val_annotations and str(args.val_annotations),
        "val_images": args.val_images and str(args.val_images),
        "proposals": args.proposals and str(args.proposals), "val_proposals": args.val_proposals and str(args.val_proposals),
    }  # fmt: skip
    options = TrainingOptions(
        output_dir=str(output_dir), schedule=args.schedule, epochs=args.epochs, max_steps=args.max_steps,
        batch_size=args.batch_size, optimizer=args.optimizer, learning_rate=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, lr_schedule=args.lr_schedule, lr_steps=args.lr_steps, gamma=0.1,
        warmup_steps=args.warmup_steps, max_grad_norm=args.max_grad_norm, flip_probability=args.flip,
        eval_every=args.eval_every, save_every=args.save_every, keep_checkpoints=args.keep_checkpoints,
        log_every=args.log_every, seed=args.seed, progress_bar=not args.no_progress,
    )  # fmt: skip
    model, processor, notes = _starting_point(args, data)
    if args.proposals and model.config.proposal_source != "external":
        model.config.proposal_source = "external"
        notes.append(
            f"Training a Fast R-CNN on the proposals of {args.proposals}: the model's proposal_source becomes "
            "'external', its RPN is not trained, and it detects only with proposals given (evaluate --proposals)."
        )
    for note in notes:
        say(note)
    return _TrainingRun(model=model, processor=processor, options=options, data=data, notes=notes)


def _write_trained_model(
    output_dir: Path, trainer: Any, run: _TrainingRun, state: Any, train_set: Any, val_set: Any
) -> None:
    """The final model, its model card and the training log, in `output_dir`."""
    from ..training.model_card import render_model_card
    from ..training.trainer import export_model, write_log

    options, data = run.options, run.data
    card = render_model_card(
        title=f"Faster R-CNN trained with faster-rcnn-hub ({options.schedule} schedule)",
        config=trainer.model.config,
        processor_size=run.processor.size,
        summary="Trained with `faster-rcnn-hub train`.",
        data=f"Training set: `{data['annotations']}` ({len(train_set)} images with objects)"
        + (f"; validation set: `{data['val_annotations']}` ({len(val_set)} images)." if val_set else "."),
        recipe={key: value for key, value in dataclasses.asdict(options).items() if key != "progress_bar"},
        log=state.log,
        evaluations=state.evaluations,
        final_metrics=state.evaluations[-1] if state.evaluations else None,
        timing=f"{state.global_step} steps, {state.wall_seconds / 60:.1f} min wall, {state.cpu_seconds / 60:.1f} min "
        "process CPU time.",
        notes=run.notes,
    )
    export_model(output_dir, trainer.model, run.processor, model_card=card)
    write_log(output_dir, state, {"notes": run.notes})


def _accelerator() -> Any:
    """accelerate's `Accelerator` when launched on several processes (`accelerate launch`), else `None`."""
    from ..distributed import import_accelerate, launched_distributed, process_group_kwargs, use_cpu

    if not launched_distributed():
        return None
    accelerate = import_accelerate()
    return accelerate.Accelerator(cpu=use_cpu(), kwargs_handlers=process_group_kwargs())


def _main_process_print(accelerator: Any) -> Callable[..., None]:
    if accelerator is None or accelerator.is_main_process:
        return print
    return lambda *args, **kwargs: None


def _starting_point(args: argparse.Namespace, data: dict[str, Any]) -> tuple[Any, Any, list[str]]:
    from ..models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig
    from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
    from ..training.data import CocoDetectionDataset
    from ..training.model_setup import model_for_finetuning, new_model, with_new_mask_head

    if args.mask_head_channels and not args.model:
        raise FasterRCNNHubError(
            "--mask-head-channels adds a mask head to the model given with --model; a new model (--config) gets one "
            'from its config: "mask_head": {"conv_channels": N}.'
        )
    class_names = CocoDetectionDataset(data["annotations"], data["images"]).class_names
    if args.model:
        start = model_for_finetuning(args.model, class_names)
        if args.scale:
            start.processor.size = args.scale
        if args.mask_head_channels:
            start = with_new_mask_head(start, args.mask_head_channels, args.seed)
    elif args.config:
        config_path = Path(args.config)
        if not config_path.is_file():
            raise FasterRCNNHubError(f"Config file not found: {config_path}")
        try:
            config = FasterRCNNConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as error:
            raise FasterRCNNHubError(f"{config_path} is not a JSON file ({error}).") from error
        processor = FasterRCNNImageProcessor(size=args.scale) if args.scale else FasterRCNNImageProcessor()
        start = new_model(config, class_names, processor, args.seed)
    else:
        raise FasterRCNNHubError(
            "train needs a starting point: --model DIR to fine-tune a converted or trained model, or --config "
            "CONFIG.json for a new model."
        )
    return start.model, start.processor, start.notes


def _proposal_set(path: str | None) -> Any:
    """The proposal file at `path` (a `ProposalSet`), or `None` without one."""
    if not path:
        return None
    from ..proposals import ProposalSet

    return ProposalSet.load(path)


def run_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation import (
        COCO_METRIC_NAMES,
        coco_box_metrics,
        coco_mask_metrics,
        voc_mean_average_precision,
        with_rle_masks,
    )

    _check_evaluation_outputs(args)
    dataset, results = _evaluate_torch(args) if args.backend == "torch" else _evaluate_exported(args)
    metrics = coco_box_metrics(dataset.coco, results)
    voc = voc_mean_average_precision(dataset.coco, results)
    print(metrics["summary"])
    print("COCO box AP: " + "  ".join(f"{key} {metrics[key]:.4f}" for key in ("AP", "AP50", "AP75", "AP_small",
                                                                           "AP_medium", "AP_large")))  # fmt: skip
    print(f"Pascal VOC mAP@0.5: {voc['mAP']:.4f}")
    payload = {key: value for key, value in metrics.items() if key != "summary"} | {"VOC_mAP50": voc["mAP"]}
    if any("segmentation" in result for result in results):
        # A model that segments: mask AP too, under mmdetection's segm_ names (and RLE in --results-json).
        results = with_rle_masks(results)
        masks = coco_mask_metrics(dataset.coco, results)
        print(masks["summary"])
        print("COCO mask AP: " + "  ".join(f"{key} {masks[key]:.4f}" for key in COCO_METRIC_NAMES))
        payload |= {f"segm_{key}": masks[key] for key in COCO_METRIC_NAMES}
    if args.results_json:
        Path(args.results_json).write_text(json.dumps(results), encoding="utf-8")
        print(f"{len(results)} detections written to {args.results_json}")
    if args.metrics_json:
        Path(args.metrics_json).write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0


def _evaluate_torch(args: argparse.Namespace) -> tuple[Any, list[dict[str, Any]]]:
    """The data set and the PyTorch model's COCO results on it."""
    from ..default_model import default_model_dir
    from ..detection.model_folder import check_model_source
    from ..evaluation import predict_coco_results
    from ..models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig
    from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
    from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection
    from ..training.data import CocoDetectionDataset

    device = _setup_runtime(args)
    model_dir = Path(args.model) if args.model else default_model_dir()
    check_model_source(model_dir)
    config = FasterRCNNConfig.from_pretrained(str(model_dir))
    if config.proposal_source == "external" and not args.proposals:
        raise FasterRCNNHubError(
            f"{model_dir} is a Fast R-CNN (it was trained on proposals from outside): give the images' proposals with "
            "--proposals FILE (faster-rcnn-hub selective-search makes one)."
        )
    # The data set (every annotation checked, every image file found) before the model loads and detects.
    dataset = CocoDetectionDataset(args.annotations, args.images, _class_names(config),
                                   proposals=_proposal_set(args.proposals))  # fmt: skip
    model = FasterRCNNForObjectDetection.from_pretrained(str(model_dir)).to(device).eval()
    processor = FasterRCNNImageProcessor.from_pretrained(str(model_dir))
    unmatched = [name for label, name in enumerate(dataset.class_names) if label not in dataset.label_to_category_id]
    print(f"Evaluating {model_dir} on {len(dataset)} images of {args.annotations}")
    if unmatched:
        print(f"note: model classes without a category in the data set (their detections are dropped): "
              f"{', '.join(unmatched[:10])}{' ...' if len(unmatched) > 10 else ''}")  # fmt: skip
    from tqdm.auto import tqdm

    with tqdm(total=len(dataset), desc="detecting", unit="image") as bar:
        results = predict_coco_results(
            model, processor, dataset, dataset.label_to_category_id, args.batch_size,
            progress=lambda done: bar.update(done - bar.n),
        )  # fmt: skip
    return dataset, results


def _evaluate_exported(args: argparse.Namespace) -> tuple[Any, list[dict[str, Any]]]:
    """The data set and an export folder's COCO results on it (`--backend onnxruntime|openvino`)."""
    from ..evaluation import exported_coco_results
    from ..runtime import open_exported
    from ..training.data import CocoDetectionDataset

    if not args.model:
        raise FasterRCNNHubError(
            f"--backend {args.backend} runs an export folder: pass --model OUTPUT of `faster-rcnn-hub export`."
        )
    if args.proposals or args.device not in (None, "cpu"):
        raise FasterRCNNHubError(
            f"--backend {args.backend} runs the exported graph on the CPU with the RPN's own proposals: leave out "
            "--proposals and --device (or use the default --backend torch)."
        )
    detector = open_exported(args.model, args.backend)
    class_names = [detector.id2label[label] for label in range(len(detector.id2label))]
    dataset = CocoDetectionDataset(args.annotations, args.images, class_names)
    print(f"Evaluating {args.model} ({args.backend}, {detector.folder.metadata.get('precision', 'float32')}) on "
          f"{len(dataset)} images of {args.annotations}")  # fmt: skip
    from tqdm.auto import tqdm

    with tqdm(total=len(dataset), desc="detecting", unit="image") as bar:
        results = exported_coco_results(detector, dataset, dataset.label_to_category_id,
                                        progress=lambda done: bar.update(done - bar.n))  # fmt: skip
    return dataset, results


def _check_evaluation_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, a --results-json or --metrics-json that would replace an input or a file evaluate
    did not write (without --overwrite), or that cannot be written."""
    from ..output_files import check_output_file

    inputs = [path for path in (args.annotations, args.proposals) if path]
    if args.results_json:
        check_output_file(args.results_json, "--results-json", args.overwrite, _is_coco_results, inputs)
    if args.metrics_json:
        check_output_file(args.metrics_json, "--metrics-json", args.overwrite, _is_metrics, inputs)


def _is_coco_results(content: object) -> bool:
    """Whether parsed JSON is what `evaluate --results-json` writes: a list of COCO detection results (with masks
    for a model that segments)."""
    keys = {"image_id", "category_id", "bbox", "score"}
    return isinstance(content, list) and all(
        isinstance(item, dict) and keys <= set(item) <= keys | {"segmentation"} for item in content
    )


def _is_metrics(content: object) -> bool:
    """Whether parsed JSON is what `evaluate --metrics-json` writes."""
    return isinstance(content, dict) and {"AP", "VOC_mAP50"} <= set(content)


def run_synth(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..data.synthetic import SyntheticSpec, write_dataset

    spec = SyntheticSpec(image_size=(args.image_size, args.image_size))
    with tqdm(total=args.num_images, desc="drawing", unit="image") as bar:
        output = write_dataset(args.output, args.num_images, args.seed, spec, overwrite=args.overwrite,
                               progress=lambda done: bar.update(done - bar.n))  # fmt: skip
    print(f"Wrote {args.num_images} images to {output / 'images'} and annotations to {output / 'annotations.json'}")
    return 0


def run_train_default(args: argparse.Namespace) -> int:
    from ..training.default_recipe import train_default_model

    train_default_model(
        output_dir=args.output_dir, work_dir=args.work_dir, threads=args.threads, overwrite=args.overwrite,
        resume=args.resume, progress_bar=not args.no_progress,
    )  # fmt: skip
    return 0


__all__ = ["add_commands", "run_evaluate", "run_synth", "run_train", "run_train_default"]
