"""The `faster-rcnn-hub` command line: convert mmdetection checkpoints, detect objects, train and evaluate, serve
the demo.

Starting it is cheap: each command's module adds its arguments without importing torch, transformers or the
model, and imports what it needs only when the command runs, so `--help`, `zoo` and argument errors answer at
once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ..errors import FasterRCNNHubError
from . import (
    conversion_commands,
    demo_command,
    detection_commands,
    export_commands,
    proposal_commands,
    training_commands,
)

Handler = Callable[[argparse.Namespace], int]
# Each adds its commands to the parser and returns their handlers, in the order `--help` lists them.
_COMMAND_MODULES = (
    conversion_commands,
    detection_commands,
    export_commands,
    demo_command,
    training_commands,
    proposal_commands,
)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    """The argument parser of every command, and each command's handler by name."""
    parser = argparse.ArgumentParser(
        prog="faster-rcnn-hub",
        description="Run mmdetection Faster R-CNN checkpoints with PyTorch and transformers alone.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    handlers: dict[str, Handler] = {}
    for module in _COMMAND_MODULES:
        handlers.update(module.add_commands(commands))
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    try:
        return handlers[args.command](args)
    except FasterRCNNHubError as error:
        print(f"faster-rcnn-hub {args.command}: error: {error}", file=sys.stderr)
        return 2


def convert_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `convert/convert_mmdet_checkpoint.py`: the `convert` command on its own."""
    parser = argparse.ArgumentParser(
        prog="convert_mmdet_checkpoint.py",
        description="Convert an mmdetection Faster R-CNN checkpoint into a Hugging Face model folder.",
    )
    conversion_commands.add_convert_arguments(parser)
    args = parser.parse_args(argv)
    args.command = "convert"
    try:
        return conversion_commands.run_convert(args)
    except FasterRCNNHubError as error:
        print(f"convert_mmdet_checkpoint.py: error: {error}", file=sys.stderr)
        return 2


__all__ = ["build_parser", "convert_main", "main"]
