"""The `predict` run: list the images, skip those already in the output, share the rest among the processes,
detect batch by batch through a `DataLoader` (images decoded in worker processes), append each batch to the
output, and merge the processes' parts at the end."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from ..detection.devices import check_device
from ..distributed import Processes
from ..errors import FasterRCNNHubError, InvalidImageError, ModelNotFoundError
from ..models.faster_rcnn.image_io import load_image, to_rgb_array
from .images import list_images
from .records import (
    append_records,
    check_output_path,
    merge_parts,
    part_path,
    part_paths,
    read_records,
    resolved_key,
)


@dataclass
class PredictionSummary:
    """What a `predict` run did, over all its processes.

    Attributes:
        output: The JSON-lines file.
        images: Images the input matched.
        already_done: Of those, images the output already held (skipped).
        predicted: Images given a record in this run (detections or an error).
        errors: Of those, images that could not be read (recorded with an `"error"` field).
        records: Lines of the output at the end (images of earlier runs with other inputs included).
        num_processes: Processes that shared the work.
        is_main_process: Whether this process is the main one (the one that reports).
    """

    output: Path
    images: int
    already_done: int
    predicted: int
    errors: int
    records: int
    num_processes: int
    is_main_process: bool = True


class ImageFiles(Dataset):
    """Decoded images for the data loader; an image that cannot be read becomes an error entry, not an exception,
    so that one bad file does not stop a long run."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        try:
            return {"path": path, "array": to_rgb_array(load_image(path))}
        except (InvalidImageError, OSError) as error:
            return {"path": path, "error": str(error)}


def _as_list(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items


def resolve_model(model: str | os.PathLike | None) -> str:
    """The model to load: the bundled default when `None`; a folder must hold `config.json`."""
    from ..default_model import default_model_dir

    if model is None:
        return str(default_model_dir())
    path = Path(model)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{model} is not a model folder (no config.json); convert or train one first.")
        return str(path)
    if str(model).startswith((".", "/", "~")) or str(model).count("/") != 1:
        raise ModelNotFoundError(f"Model folder not found: {model}")
    return str(model)  # a Hub id


def _load_detector(model: str, device: Any, dtype: str, backend: str = "torch") -> Any:
    from ..detection import Detector

    try:
        return Detector(model, device=device, dtype=dtype, backend=backend)
    except OSError as error:
        raise ModelNotFoundError(f"Cannot load the model {model!r}: {error}") from error


def _plan(source: str, output: Path, retry_errors: bool, batch_size: int) -> tuple[list[list[str]], int, int]:
    """(batches still to do, images matched, images already done); run by the main process alone, while the
    others wait, so that it may repair torn last lines.

    Batches are cut from the whole sorted list, whatever is done, and done images are then left out of them: the
    model's float results depend slightly on which images share a forward pass, so fixed batches make a run give
    the same bits on any number of processes, resumed or not (with the same batch size and thread count).
    """
    images = list_images(source)
    output.parent.mkdir(parents=True, exist_ok=True)
    done: set[str] = set()
    for source_file in [output, *part_paths(output)]:
        for record in read_records(source_file, repair=True):
            if not (retry_errors and "error" in record):
                done.add(resolved_key(record["path"]))
    # Resolved paths: a run resumed with the images spelled another way (absolute, relative) skips them too.
    batches = [
        [image for image in images[start : start + batch_size] if resolved_key(image) not in done]
        for start in range(0, len(images), batch_size)
    ]
    batches = [batch for batch in batches if batch]
    return batches, len(images), len(images) - sum(len(batch) for batch in batches)


def predict_to_jsonl(
    model: str | os.PathLike | None,
    images: str,
    output: str | os.PathLike,
    threshold: float = 0.5,
    batch_size: int = 4,
    num_workers: int = 2,
    device: str | None = None,
    dtype: str = "float32",
    retry_errors: bool = False,
    progress: bool = True,
    backend: str = "torch",
) -> PredictionSummary:
    """Detect objects in every image of `images` and write one JSON line per image to `output`.

    Images already in `output` are skipped (with `retry_errors`, those recorded as unreadable are tried again).
    Run under `accelerate launch --num_processes N`, the batches still to do are shared among the processes, each
    appending to `OUTPUT.part-K`, and the main process merges the parts into `output` at the end (sorted by
    path). Every image gets exactly the detections `Detector(model)(image)` gives it.

    Args:
        model: Model folder or Hub id (`None`: the bundled default model).
        images: A folder (searched recursively for image files) or a glob pattern.
        output: The JSON-lines file (appended to; created with its folder when missing).
        threshold: Keep detections with a score above this.
        batch_size: Images per forward pass (per process).
        num_workers: Data-loader processes decoding images (0: in the main process).
        device: Device of a single-process run (ignored under a multi-process launch: each process gets its own).
        dtype: The network's dtype (see `Detector`): `"float32"`, `"bfloat16"` or `"float16"`.
        retry_errors: Try again the images the output records as unreadable.
        progress: Show a progress bar (the main process's share).
        backend: `"torch"`, or `"onnxruntime"` / `"openvino"` with `model` an export folder (`faster-rcnn-hub
            export`); those run on the CPU in float32, so `device` and `dtype` must be left at their defaults.
    """
    if not 0.0 <= threshold <= 1.0:
        raise FasterRCNNHubError(f"--threshold must lie in [0, 1], got {threshold}.")
    if batch_size < 1 or num_workers < 0:
        raise FasterRCNNHubError(f"--batch-size must be at least 1 and --num-workers at least 0, got {batch_size}, "
                                 f"{num_workers}.")  # fmt: skip
    if backend != "torch" and model is None:
        raise FasterRCNNHubError(
            f"--backend {backend} runs an export folder: pass --model OUTPUT of `faster-rcnn-hub export`."
        )
    output = Path(output)
    check_output_path(output)
    model_source = resolve_model(model)
    processes = Processes(check_device(device) if device is not None else None)
    plan: Any = None
    if processes.is_main:
        try:
            plan = _plan(images, output, retry_errors, batch_size)
        except FasterRCNNHubError as error:
            plan = error
    plan = processes.broadcast(plan)  # the other processes wait here while the main one reads and repairs
    if isinstance(plan, Exception):
        raise plan
    batches, matched, already_done = plan

    # An exported graph runs on the CPU whatever device this process was given.
    detector = _load_detector(model_source, processes.device if backend == "torch" else device, dtype, backend)
    share = processes.share(batches)
    target = output if processes.num_processes == 1 else part_path(output, processes.index)
    predicted, errors = _predict_share(detector, share, target, threshold, batch_size, num_workers,
                                       progress and processes.is_main, processes)  # fmt: skip
    counts = processes.gather((predicted, errors))
    processes.wait_for_everyone()
    records = merge_parts(output) if processes.is_main else 0
    processes.wait_for_everyone()
    return PredictionSummary(
        output=output, images=matched, already_done=already_done, predicted=sum(count[0] for count in counts),
        errors=sum(count[1] for count in counts), records=processes.broadcast(records),
        num_processes=processes.num_processes, is_main_process=processes.is_main,
    )  # fmt: skip


def _predict_share(
    detector: Any,
    batches: list[list[str]],
    target: Path,
    threshold: float,
    batch_size: int,
    num_workers: int,
    show_progress: bool,
    processes: Processes,
) -> tuple[int, int]:
    from tqdm.auto import tqdm

    paths = [path for batch in batches for path in batch]
    starts = [0]
    for batch in batches:
        starts.append(starts[-1] + len(batch))
    batch_sampler = [list(range(start, stop)) for start, stop in zip(starts, starts[1:])]
    loader = DataLoader(ImageFiles(paths), batch_sampler=batch_sampler, num_workers=num_workers, collate_fn=_as_list)
    description = "predicting" if processes.num_processes == 1 else f"predicting (process 1 of {processes.num_processes})"
    predicted = errors = 0
    with tqdm(total=len(paths), desc=description, unit="image", disable=not show_progress or not paths) as bar:
        for batch in loader:
            readable = [item for item in batch if "array" in item]
            detections = (
                detector.detect_batch([item["array"] for item in readable], threshold, batch_size, progress=False)
                if readable else []
            )  # fmt: skip
            found = {item["path"]: (item["array"], boxes) for item, boxes in zip(readable, detections)}
            records = []
            for item in batch:
                if "error" in item:
                    errors += 1
                    tqdm.write(f"warning: skipped {item['path']}: {item['error']} (recorded in {target} with an "
                               "\"error\" field)", file=sys.stderr)  # fmt: skip
                    records.append({"path": item["path"], "error": item["error"]})
                    continue
                array, boxes = found[item["path"]]
                records.append({"path": item["path"], "width": int(array.shape[1]), "height": int(array.shape[0]),
                                "detections": [detection.to_dict() for detection in boxes]})  # fmt: skip
            append_records(target, records)
            predicted += len(records)
            bar.update(len(batch))
    return predicted, errors
