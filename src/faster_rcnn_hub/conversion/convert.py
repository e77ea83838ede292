"""Turning an mmdetection Faster R-CNN checkpoint into a Hugging Face model folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..errors import CheckpointError, FasterRCNNHubError, MMDetConfigError
from ..models.faster_rcnn.configuration_faster_rcnn import FasterRCNNConfig
from ..models.faster_rcnn.image_processing_faster_rcnn import FasterRCNNImageProcessor
from ..models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection
from ..output_files import check_writable_folder
from ..zoo import ZooEntry, find_zoo_entry_by_sha256
from .checkpoint import MMDetCheckpoint, load_mmdet_checkpoint
from .classes import DATASET_CLASSES, NAMED_CLASS_LISTS
from .config_mapping import ConversionSettings, settings_from_mmdet_config
from .mmdet_config import load_config_file, parse_config_text
from .model_card import render_model_card
from .state_dict import convert_state_dict


@dataclass
class ConversionResult:
    """What `convert_checkpoint` wrote."""

    output_dir: Path
    config: FasterRCNNConfig
    processor: FasterRCNNImageProcessor
    notes: list[str]
    zoo_entry: ZooEntry | None = None


def convert_checkpoint(
    checkpoint_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    config_path: str | os.PathLike | None = None,
    classes: str | list[str] | None = None,
    overwrite: bool = False,
    source_url: str | None = None,
    model_id: str | None = None,
) -> ConversionResult:
    """Convert an mmdetection checkpoint into `output_dir`: `config.json`, `model.safetensors`,
    `preprocessor_config.json`, a `README.md` model card, and the model code for `trust_remote_code=True`.

    A checkpoint of mmdetection's model zoo (recognised by its SHA-256) is converted with the zoo table's config
    (mmdetection 3.3.0's, what mmdetection itself uses for that model name), and its card gets the published box AP.

    Args:
        checkpoint_path: The mmdetection `.pth` file (2.x or 3.x).
        output_dir: Folder to create. It is written completely in a temporary folder beside it and moved into
            place only when finished.
        config_path: An mmdetection config file that overrides (or supplies) the config embedded in the
            checkpoint.
        classes: Class names: a list, a file with one name per line, a comma-separated string, or one of
            `coco`, `voc`, `cityscapes`. By default they come from the checkpoint's meta, or from the config's
            dataset when the meta's do not fit the model.
        overwrite: Replace an existing `output_dir`.
        source_url: Where the checkpoint was downloaded from, recorded in the model card (for zoo checkpoints,
            the zoo URL by default).
        model_id: What the card's usage code loads (default: the folder's name, for code run from its parent);
            pass the Hub repository id when the folder is to be uploaded.

    Raises:
        FasterRCNNHubError: (a `ValueError`) with a message saying what is wrong: unreadable or unsafe
            checkpoint, unsupported architecture, missing/unused keys, wrong shapes, bad class names, or an
            existing output folder.
    """
    output_dir = Path(output_dir)
    _check_target(output_dir, overwrite)  # fail before the slow part
    checkpoint = load_mmdet_checkpoint(checkpoint_path)
    _check_finite(checkpoint)
    zoo_entry = find_zoo_entry_by_sha256(checkpoint.sha256)
    mmdet_config, config_origin = _mmdet_config(checkpoint, config_path, zoo_entry)
    settings = settings_from_mmdet_config(mmdet_config)
    class_names, class_note = _resolve_classes(classes, checkpoint.meta, settings)
    notes = list(settings.notes) + ([class_note] if class_note else [])

    config = FasterRCNNConfig(
        **settings.model,
        id2label=dict(enumerate(class_names)),
        label2id={name: index for index, name in enumerate(class_names)},
        architectures=["FasterRCNNForObjectDetection"],
        source={
            "checkpoint": checkpoint.path.name,
            "sha256": checkpoint.sha256,
            "config": config_origin,
            "url": source_url or (zoo_entry.url if zoo_entry else None),
            "mmdet_version": checkpoint.meta.get("mmdet_version"),
            "model_zoo_name": zoo_entry.name if zoo_entry else None,
        },
    )
    if settings.fpn_in_channels is not None and config.backbone_out_channels != settings.fpn_in_channels:
        raise MMDetConfigError(
            f"model.neck.in_channels {settings.fpn_in_channels} do not match the backbone's output channels "
            f"{config.backbone_out_channels}."
        )
    processor = FasterRCNNImageProcessor(**settings.processor)
    # Shapes only: building on the meta device allocates nothing before the real weights are assigned.
    with torch.device("meta"):
        model = FasterRCNNForObjectDetection(config)
    weights = convert_state_dict(checkpoint.state_dict, model.state_dict())
    model.load_state_dict(weights, strict=True, assign=True)
    model.eval()

    card = render_model_card(config, processor, notes, model_id or output_dir.name, zoo_entry)
    _write_atomically(
        output_dir,
        overwrite,
        lambda folder: _write_folder(folder, model, processor, weights, card),
    )
    return ConversionResult(output_dir=output_dir, config=config, processor=processor, notes=notes, zoo_entry=zoo_entry)


def _check_finite(checkpoint: MMDetCheckpoint) -> None:
    """Refuse weights with NaN or infinite values (a diverged training run saves them), naming the tensors: the
    model would detect nothing, and NaN never compares equal, so the file would not even read back identically."""
    spoiled = []
    for name, tensor in checkpoint.state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            nan, infinite = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
            if nan or infinite:
                kinds = ", ".join(f"{count} {kind}" for count, kind in ((nan, "NaN"), (infinite, "infinite")) if count)
                spoiled.append(f"{name} ({kinds} of {tensor.numel()} values)")
    if spoiled:
        more = f" and {len(spoiled) - 10} more tensors" if len(spoiled) > 10 else ""
        raise CheckpointError(
            f"{checkpoint.path} holds NaN or infinite weights, in {', '.join(spoiled[:10])}{more}: it was saved from a "
            "training run that diverged. Convert an earlier checkpoint of the run (or retrain with a lower learning "
            "rate or gradient clipping); nothing was written."
        )


def _mmdet_config(
    checkpoint: MMDetCheckpoint, config_path: str | os.PathLike | None, zoo_entry: ZooEntry | None
) -> tuple[dict[str, Any], str]:
    if config_path is not None:
        return load_config_file(config_path), Path(config_path).name
    if zoo_entry is not None:
        return zoo_entry.mmdet_config, f"{zoo_entry.config_file} (mmdetection 3.3.0 model zoo)"
    text = checkpoint.meta.get("cfg") or checkpoint.meta.get("config")
    if isinstance(text, str) and text.strip():
        return parse_config_text(text, filename=f"{checkpoint.path.name} (embedded config)"), "embedded in checkpoint"
    raise MMDetConfigError(
        f"{checkpoint.path} carries no config (neither meta.cfg nor meta.config); pass the mmdetection config it "
        "was trained with: --config path/to/config.py"
    )


def _resolve_classes(
    requested: str | list[str] | None, meta: dict[str, Any], settings: ConversionSettings
) -> tuple[list[str], str | None]:
    expected = settings.num_classes
    if requested is not None:
        names = _parse_class_argument(requested)
        if len(names) != expected:
            raise FasterRCNNHubError(
                f"{len(names)} class names were given but the model has {expected} classes."
            )
        return names, None
    dataset_meta = meta.get("dataset_meta") if isinstance(meta.get("dataset_meta"), dict) else {}
    meta_classes = dataset_meta.get("classes") or meta.get("CLASSES")
    if meta_classes is not None and len(meta_classes) == expected:
        return [str(name) for name in meta_classes], None
    fallbacks = [
        ("the config's dataset", settings.config_classes),
        (f"mmdetection's {settings.dataset_type}", DATASET_CLASSES.get(settings.dataset_type or "")),
    ]
    for origin, names in fallbacks:
        if names is not None and len(names) == expected:
            note = (
                f"The checkpoint's meta names {len(meta_classes)} classes but the model has {expected}; "
                f"using the {expected} class names of {origin} instead."
                if meta_classes is not None
                else f"The checkpoint names no classes; using the {expected} class names of {origin}."
            )
            return list(names), note
    found = f"names {len(meta_classes)} classes" if meta_classes is not None else "names no classes"
    raise FasterRCNNHubError(
        f"The checkpoint {found} but the model has {expected}, and the config's dataset does not say which. "
        f"Pass the names with --classes (a file with one name per line, a comma-separated list, or one of "
        f"{sorted(NAMED_CLASS_LISTS)})."
    )


def _parse_class_argument(requested: str | list[str]) -> list[str]:
    if isinstance(requested, (list, tuple)):
        names = [str(name) for name in requested]
    elif requested.lower() in NAMED_CLASS_LISTS:
        names = list(NAMED_CLASS_LISTS[requested.lower()])
    elif Path(requested).is_file():
        names = [line.strip() for line in Path(requested).read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        names = [name.strip() for name in requested.split(",") if name.strip()]
    if len(set(names)) != len(names):
        raise FasterRCNNHubError(f"Class names must be unique; got duplicates in {names}.")
    return names


def _write_folder(
    folder: Path,
    model: FasterRCNNForObjectDetection,
    processor: FasterRCNNImageProcessor,
    weights: dict[str, torch.Tensor],
    card: str,
) -> None:
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    written = load_file(str(folder / "model.safetensors"))
    if set(written) != set(weights) or any(not torch.equal(written[key], weights[key]) for key in weights):
        raise CheckpointError("The written model.safetensors does not read back identically; nothing was kept.")
    (folder / "README.md").write_text(card, encoding="utf-8")


def _apply_default_permissions(folder: Path) -> None:
    # mkdtemp creates a private (0700) folder; the result should be as readable as any folder the user makes.
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(path: Path, marker: str) -> int | None:
    # Names look like ".<output>.<marker>-<pid>-<random>".
    try:
        return int(path.name.split(f".{marker}-", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def _recover_abandoned(output_dir: Path) -> None:
    """Clean up after a conversion into `output_dir` that was killed midway.

    A half-written staging folder is deleted. A previous output that was moved aside for `--overwrite` and
    not yet replaced is moved back, so a kill at any moment loses nothing. Folders of live processes are left.
    """
    parent, name = output_dir.parent, output_dir.name
    for marker in ("old", "partial"):
        for path in sorted(parent.glob(f".{name}.{marker}-*")):
            pid = _owner_pid(path, marker)
            if pid is not None and pid != os.getpid() and _process_alive(pid):
                continue
            if marker == "old" and not output_dir.exists():
                path.rename(output_dir)
            else:
                shutil.rmtree(path, ignore_errors=True)


def _check_target(output_dir: Path, overwrite: bool) -> None:
    if output_dir.parent.exists():
        _recover_abandoned(output_dir)
    if output_dir.exists() and not overwrite:
        raise FasterRCNNHubError(f"{output_dir} already exists; pass overwrite=True (--overwrite) to replace it.")
    # The folder is written beside OUTPUT_DIR and renamed into place, so its parent must take new files.
    check_writable_folder(output_dir.parent, f"OUTPUT_DIR {output_dir}")


def _write_atomically(output_dir: Path, overwrite: bool, write: Any) -> None:
    """Run `write(folder)` on a temporary folder beside `output_dir`, then move it into place.

    A failure (or a kill) before the final rename leaves any previous `output_dir` untouched; a later
    conversion into the same folder removes what a killed one left behind.
    """
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    _check_target(output_dir, overwrite)
    prefix = f".{output_dir.name}.{{}}-{os.getpid()}-"
    staging = Path(tempfile.mkdtemp(prefix=prefix.format("partial"), dir=output_dir.parent))
    try:
        write(staging)
        _apply_default_permissions(staging)
        if output_dir.exists():
            if not overwrite:
                raise FasterRCNNHubError(f"{output_dir} appeared while converting; not replacing it.")
            backup = Path(tempfile.mkdtemp(prefix=prefix.format("old"), dir=output_dir.parent))
            backup.rmdir()
            output_dir.rename(backup)
            staging.rename(output_dir)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            staging.rename(output_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
