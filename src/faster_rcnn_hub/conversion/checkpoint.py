"""Reading mmdetection/mmengine checkpoints without running code from them.

A `.pth` file is a pickle, and unpickling can run arbitrary code. We only ever load with PyTorch's
`weights_only` unpickler, which builds nothing but tensors and plain containers. Training checkpoints saved by
mmengine also carry logging objects (`HistoryBuffer`, NumPy scalars and arrays); before loading, the file's
globals are listed *without* unpickling, and the load proceeds only if every one of them is on a short
allow-list: NumPy's array and scalar rebuilders, and inert stand-ins for mmengine's classes that keep their
state as plain data and never execute any method of the original class.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..zoo.download import file_sha256


class InertObject:
    """Stand-in for a class of a training framework: keeps the pickled state, runs none of its code."""

    def __setstate__(self, state: Any) -> None:
        self.__dict__["pickled_state"] = state


class InertDict(dict):
    """Stand-in for a dict subclass of a training framework (mmengine's `ConfigDict`)."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, Mapping):
            self.update(state)


def recorded_attribute(owner: Any, name: str) -> str:
    """Stand-in for `getattr` in pickles: names the attribute instead of looking it up.

    mmengine's `HistoryBuffer` pickles its statistics methods as `getattr(HistoryBuffer, "mean")`; with the
    class replaced by an inert stand-in there is nothing to look up, and looking attributes up on unpickled
    objects is exactly the kind of code execution we refuse.
    """
    return f"<attribute {name!r} of {getattr(owner, '__name__', type(owner).__name__)}>"


def _numpy_safe_globals() -> list[tuple[Any, str]]:
    core = np._core if hasattr(np, "_core") else np.core
    entries: list[tuple[Any, str]] = []
    for prefix in ("numpy.core", "numpy._core"):
        entries.append((core.multiarray._reconstruct, f"{prefix}.multiarray._reconstruct"))
        entries.append((core.multiarray.scalar, f"{prefix}.multiarray.scalar"))
    entries += [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    for dtype_class_name in dir(np.dtypes):
        dtype_class = getattr(np.dtypes, dtype_class_name)
        if isinstance(dtype_class, type) and dtype_class_name.endswith("DType"):
            entries.append((dtype_class, f"numpy.dtypes.{dtype_class_name}"))
    return entries


# Globals of mmengine training checkpoints that load as inert stand-ins.
_FRAMEWORK_STAND_INS: dict[str, type] = {
    "mmengine.logging.history_buffer.HistoryBuffer": InertObject,
    "mmengine.logging.message_hub.MessageHub": InertObject,
    "mmengine.config.config.ConfigDict": InertDict,
    "mmcv.utils.config.ConfigDict": InertDict,
    "mmengine.structures.instance_data.InstanceData": InertObject,
}


def _allowed_globals() -> dict[str, Any]:
    allowed = {name: stand_in for name, stand_in in _FRAMEWORK_STAND_INS.items()}
    allowed.update({name: value for value, name in _numpy_safe_globals()})
    allowed["_codecs.encode"] = None  # numpy scalars pickle their bytes through codecs.encode (pure data)
    allowed["builtins.getattr"] = recorded_attribute
    allowed["__builtin__.getattr"] = recorded_attribute
    return allowed


@dataclass
class MMDetCheckpoint:
    """The parts of an mmdetection checkpoint the converter uses."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]
    sha256: str


def load_mmdet_checkpoint(path: str | Path) -> MMDetCheckpoint:
    """Load an mmdetection `.pth` checkpoint safely.

    Raises:
        CheckpointError: the file is missing, truncated, not a PyTorch checkpoint, would need unsafe
            unpickling, or holds no state dict.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"Checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"Expected a checkpoint file but {path} is a directory.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint {path} is empty (0 bytes).")
    loaded = _safe_torch_load(path)
    state_dict, meta = _split_checkpoint(loaded, path)
    return MMDetCheckpoint(path=path, state_dict=state_dict, meta=meta, sha256=file_sha256(path))


def _safe_torch_load(path: Path) -> Any:
    with path.open("rb") as handle:
        starts_like_zip = handle.read(4) == b"PK\x03\x04"
    is_zip = zipfile.is_zipfile(path)
    if starts_like_zip and not is_zip:
        raise CheckpointError(
            f"{path} is truncated or damaged: it starts like a PyTorch checkpoint but its archive index is "
            "missing. Download or copy it again."
        )
    extra_globals: list[tuple[Any, str]] = []
    if is_zip:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception as error:  # a damaged archive fails here before any unpickling
            raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({error}).") from error
        allowed = _allowed_globals()
        refused = [name for name in unsafe if name not in allowed]
        if refused:
            raise CheckpointError(
                f"Refusing to load {path}: it contains pickled objects that could run code when loaded "
                f"({', '.join(sorted(refused))}). Only tensors, plain containers and known mmengine logging "
                "objects are accepted. If you trust the file, re-save its state_dict with torch.save() first."
            )
        extra_globals = [(allowed[name], name) for name in unsafe if allowed[name] is not None]
        if "numpy.dtype" in unsafe:
            # Unpickled dtypes are then built as instances of their per-type classes (numpy.dtypes.*),
            # which never appear as globals of their own.
            extra_globals += [entry for entry in _numpy_safe_globals() if entry[1].startswith("numpy.dtypes.")]
        if "_codecs.encode" in unsafe:
            import codecs

            extra_globals.append((codecs.encode, "_codecs.encode"))
    try:
        with torch.serialization.safe_globals(extra_globals):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"Refusing to load {path}: loading it would need unrestricted unpickling, which can run code "
            f"({error}). If you trust the file, re-save its state_dict with torch.save() first."
        ) from error
    except Exception as error:  # torch's loaders raise many kinds of errors on damaged input
        kind = "truncated or damaged" if is_zip else "not a PyTorch checkpoint"
        raise CheckpointError(f"{path} is {kind} ({type(error).__name__}: {error}).") from error


def _split_checkpoint(loaded: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not a checkpoint dictionary.")
    meta = loaded.get("meta") if isinstance(loaded.get("meta"), Mapping) else {}
    for key in ("state_dict", "model", "module"):
        if isinstance(loaded.get(key), Mapping):
            state_dict = loaded[key]
            break
    else:
        if loaded and all(isinstance(value, torch.Tensor) for value in loaded.values()):
            state_dict = loaded
        else:
            raise CheckpointError(
                f"{path} has no 'state_dict' (keys found: {sorted(map(str, loaded))[:10]}); it is not an "
                "mmdetection checkpoint."
            )
    tensors = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: state_dict entry {key!r} is a {type(value).__name__}, not a tensor.")
        # Checkpoints saved from a DistributedDataParallel wrapper prefix every key with "module.".
        tensors[key[len("module."):] if key.startswith("module.") else key] = value
    return tensors, dict(meta)
