"""Hugging Face ZeroGPU: on a ZeroGPU Space a GPU is attached only while a function decorated with
`spaces.GPU` runs, so the demo's model calls go through that decorator when the `spaces` package is importable
(it is installed on Spaces only); elsewhere they run as they are, on `--device` (CUDA when available)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

Function = TypeVar("Function", bound=Callable[..., Any])


def on_gpu_when_available(function: Function) -> Function:
    """`spaces.GPU(function)` when the `spaces` package is importable, else `function` itself."""
    try:
        import spaces
    except ImportError:
        return function
    return spaces.GPU(function)
