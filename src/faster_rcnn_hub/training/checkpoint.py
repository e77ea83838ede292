"""Training checkpoints in Hub format, written atomically, and resuming from them.

A checkpoint folder `checkpoint-<step>/` is a loadable model (`config.json`, `model.safetensors`,
`preprocessor_config.json`) plus `training_state.pt` (optimizer, scheduler and random-generator states) and
`trainer_state.json` (step, schedule stage, log). It is written in a hidden temporary folder and renamed into
place only when complete, so a crash while saving never damages an earlier checkpoint; the oldest are removed
only after the new one is in place.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import FasterRCNNHubError

CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE_FILE = "trainer_state.json"
TRAINING_STATE_FILE = "training_state.pt"
_CHECKPOINT_PATTERN = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


def rng_state() -> dict[str, Any]:
    """PyTorch's global random states (CPU, and CUDA when present): the sampler's draws depend on them."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_folder_atomically(destination: Path, write: Any) -> Path:
    """Call `write(folder)` on a fresh hidden folder next to `destination`, then move it into place.

    An existing `destination` is replaced only after the new folder is complete.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{destination.name}-", dir=destination.parent))
    try:
        write(staging)
        if destination.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".old-{destination.name}-", dir=destination.parent))
            os.rename(destination, retired / destination.name)
            os.rename(staging, destination)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


def save_checkpoint(
    output_dir: str | os.PathLike,
    step: int,
    model: torch.nn.Module,
    processor: Any,
    training_state: dict[str, Any],
    trainer_state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write `checkpoint-<step>` into `output_dir` atomically and keep the newest `keep` checkpoints.

    Args:
        output_dir: The training run's folder.
        step: Global training step the state is at.
        model: The model (saved with `save_pretrained`).
        processor: Its image processor (saved with `save_pretrained`).
        training_state: Tensors and state dicts for `torch.save` (optimizer, scheduler, random states).
        trainer_state: JSON-serialisable progress (step, stage, log).
        keep: Checkpoints to keep; older ones are deleted once the new one is in place (0 keeps all).
    """
    output = Path(output_dir)

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        torch.save(training_state, folder / TRAINING_STATE_FILE)
        # Written last: its presence marks a complete checkpoint.
        (folder / TRAINER_STATE_FILE).write_text(json.dumps(trainer_state, indent=2), encoding="utf-8")

    path = write_folder_atomically(output / f"{CHECKPOINT_PREFIX}{step}", write)
    if keep > 0:
        for old in list_checkpoints(output)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return path


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    output = Path(output_dir)
    if not output.is_dir():
        return []
    found = []
    for child in output.iterdir():
        match = _CHECKPOINT_PATTERN.match(child.name)
        if match and child.is_dir() and (child / TRAINER_STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def remove_stale_temporaries(output_dir: str | os.PathLike) -> None:
    """Delete half-written folders a crash left behind (they never replaced anything)."""
    output = Path(output_dir)
    if output.is_dir():
        for child in output.iterdir():
            if child.is_dir() and (child.name.startswith(".tmp-") or child.name.startswith(".old-")):
                shutil.rmtree(child, ignore_errors=True)


def load_checkpoint_states(checkpoint: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """`(training_state, trainer_state)` of a checkpoint folder."""
    folder = Path(checkpoint)
    try:
        trainer_state = json.loads((folder / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
        training_state = torch.load(folder / TRAINING_STATE_FILE, map_location="cpu", weights_only=True)
    except (OSError, json.JSONDecodeError, RuntimeError) as error:
        raise FasterRCNNHubError(f"Cannot resume from {folder}: {error}") from error
    return training_state, trainer_state
