"""Checks run before any work on the files a command will write, so that a run never ends in a traceback after
hours of computing, and never replaces a file the user did not ask it to replace (an input, or a file some other
program wrote).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import FasterRCNNHubError


def check_writable_folder(folder: str | os.PathLike, option: str) -> None:
    """Raise `FasterRCNNHubError` unless files can be written in `folder` (or it can be created).

    Nothing is created: the nearest existing folder on the way is probed with a temporary file that is removed at
    once.

    Args:
        folder: The folder the command will write in.
        option: How the command line calls it (`"--output-dir out"`), for the message.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise FasterRCNNHubError(
            f"{option}: cannot write in {folder}, because {existing} is a file, not a folder; choose another path."
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise FasterRCNNHubError(
            f"{option}: cannot write in {existing} ({error.strerror or error}); choose a folder you can write to."
        ) from error


def check_output_file(
    path: str | os.PathLike,
    option: str,
    overwrite: bool = False,
    is_own_output: Callable[[Any], bool] | None = None,
    inputs: Sequence[str | os.PathLike] = (),
) -> None:
    """Raise `FasterRCNNHubError` unless `path` may be written: its folder is writable, it is not one of the
    command's `inputs` (never, even with `overwrite`), and it either does not exist, holds this command's own
    earlier output (`is_own_output` of its parsed JSON), or `overwrite` was given.

    Args:
        path: The file the command will write.
        option: The command-line option that names it (`"--results-json"`), for the message.
        overwrite: Whether the user asked to replace an existing file (the flag `--overwrite`).
        is_own_output: Whether a file's parsed JSON content is what this command writes.
        inputs: Files the command reads.
    """
    path = Path(path)
    resolved = path.resolve()
    for source in inputs:
        if Path(source).resolve() == resolved:
            raise FasterRCNNHubError(f"{option} {path} is also an input of this command; writing it would destroy "
                                     "the input. Choose another file name.")  # fmt: skip
    if path.is_dir():
        raise FasterRCNNHubError(f"{option} {path} is a folder; give a file name such as {path / 'results.json'}.")
    if path.exists() and not overwrite and not (is_own_output is not None and _holds_own_output(path, is_own_output)):
        raise FasterRCNNHubError(f"{option} {path} exists and was not written by this command; pass --overwrite to "
                                 "replace it, or choose another file name.")  # fmt: skip
    check_writable_folder(path.parent, f"{option} {path}")


def _holds_own_output(path: Path, is_own_output: Callable[[Any], bool]) -> bool:
    try:
        return bool(is_own_output(json.loads(path.read_bytes())))
    except (OSError, ValueError):
        return False


__all__ = ["check_output_file", "check_writable_folder"]
