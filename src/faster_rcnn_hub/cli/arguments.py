"""Argument types and options shared by several commands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_dtype_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
        help="network precision (default float32: mmdetection's detections; bfloat16/float16 are faster on GPUs "
        "and on CPUs with half-precision units, and find nearly the same boxes)",
    )  # fmt: skip


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--threads", type=positive_int, help="PyTorch CPU threads (default: PyTorch's choice)")


__all__ = ["add_dtype_argument", "add_runtime_arguments", "positive_int"]
