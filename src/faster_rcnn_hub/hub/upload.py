"""Uploading a converted folder as a Hugging Face Hub model repository."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

from ..errors import FasterRCNNHubError
from .remote_code import remote_loading_problems


class HubUploadError(FasterRCNNHubError):
    """The folder could not be uploaded (not logged in, no permission, offline, ...)."""


@dataclass(frozen=True)
class UploadFile:
    """One file of an upload: its path in the repository, on disk, and its size in bytes."""

    path_in_repo: str
    local_path: Path
    size: int


def upload_plan(folder: str | os.PathLike) -> list[UploadFile]:
    """Exactly the files `push_to_hub` uploads from `folder`: every regular file below it, except hidden ones
    (any path part starting with `.`, such as `.git/` or `.DS_Store`), in sorted order.

    Raises:
        FasterRCNNHubError: `folder` is not a model folder, or it could not load with `trust_remote_code=True`
            where this package is not installed (the message says what is missing).
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FasterRCNNHubError(f"{folder} is not a converted model folder (it has no config.json).")
    problems = remote_loading_problems(folder)
    if problems:
        raise FasterRCNNHubError(
            f"{folder} would not load with trust_remote_code=True where faster-rcnn-hub is not installed: "
            + "; ".join(problems)
            + ". Nothing was uploaded. Save the model and its processor again with this package's save_pretrained "
            "(or convert the checkpoint again), which writes the model code, then upload."
        )
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files.append(UploadFile(relative.as_posix(), path, path.stat().st_size))
    return files


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    dry_run: bool = False,
    commit_message: str = "Upload Faster R-CNN converted with faster-rcnn-hub",
    api: HfApi | None = None,
) -> list[UploadFile]:
    """Upload a converted folder to the model repository `repo_id` in one commit (creating the repository).

    Args:
        folder: The converted model folder.
        repo_id: `user/name` or `organization/name`.
        private: Create the repository private (an existing repository keeps its visibility).
        dry_run: Only return what would be uploaded; nothing is sent.
        commit_message: Message of the commit.
        api: The `HfApi` to use (default: a new one, with the token from `hf auth login` or `HF_TOKEN`).

    Returns:
        The files uploaded (or, with `dry_run`, that would be).

    Raises:
        HubUploadError: the upload failed; the message says why. The local folder is never changed.
    """
    files = upload_plan(folder)
    if dry_run:
        return files
    api = api if api is not None else HfApi()
    operations = [CommitOperationAdd(path_in_repo=file.path_in_repo, path_or_fileobj=str(file.local_path)) for file in files]
    try:
        api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
        api.create_commit(repo_id, operations=operations, commit_message=commit_message, repo_type="model")
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise HubUploadError(
            f"Uploading {folder} to {repo_id} failed: {error}. The converted folder is kept; log in with "
            "`hf auth login` (or set HF_TOKEN) and check that you may write to the repository, then try again."
        ) from error
    return files


def describe_plan(files: list[UploadFile], repo_id: str, private: bool) -> str:
    """A readable list of the files of an upload and their total size."""
    width = max(len(file.path_in_repo) for file in files)
    lines = [f"  {file.path_in_repo:<{width}}  {_human_size(file.size):>9}" for file in files]
    total = _human_size(sum(file.size for file in files))
    visibility = "private" if private else "public"
    header = (
        f"{len(files)} files ({total}) for https://huggingface.co/{repo_id} (created {visibility} if it does not "
        "exist yet):"
    )
    return "\n".join([header, *lines])


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


__all__ = ["HubUploadError", "UploadFile", "describe_plan", "push_to_hub", "upload_plan"]
