"""The device a command runs on, checked before any work: `--device cuda` on a machine without a GPU is one error
saying what to do, not a driver traceback after the model has loaded."""

from __future__ import annotations

import torch

from ..errors import FasterRCNNHubError


def check_device(device: str | torch.device | None) -> torch.device:
    """`device` as a `torch.device` (default: CUDA when available, else the CPU), or a `FasterRCNNHubError` when
    it is not a device name or this machine does not have it.

    Args:
        device: `"cpu"`, `"cuda"`, `"cuda:1"`, `"mps"`, ... or `None`.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise FasterRCNNHubError(f"--device {device!r} is not a device name; use cpu, cuda or cuda:N.") from error
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise FasterRCNNHubError(f"--device {device}: this machine has no usable CUDA GPU (torch sees none); use "
                                     "--device cpu, or leave --device out.")  # fmt: skip
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise FasterRCNNHubError(f"--device {device}: this machine has {count} CUDA GPU(s), numbered from 0; use "
                                     f"cuda:0 to cuda:{count - 1}.")  # fmt: skip
    elif chosen.type == "mps" and not torch.backends.mps.is_available():
        raise FasterRCNNHubError(f"--device {device}: this machine has no usable Apple GPU; use --device cpu.")
    elif chosen.type not in ("cpu", "cuda", "mps"):
        raise FasterRCNNHubError(f"--device {device}: faster-rcnn-hub runs on cpu, cuda and mps devices.")
    return chosen
