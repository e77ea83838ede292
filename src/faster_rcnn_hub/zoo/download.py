"""Downloading model-zoo checkpoints into a cache: progress bar, resume of partial files, SHA-256 check.

The cache follows Hugging Face's conventions: `$FASTER_RCNN_HUB_CACHE` if set, else a `faster-rcnn-hub` folder in
the Hugging Face home (`$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`). A download
goes to `<name>.part` and is renamed to `<name>` only once complete and verified, so a cached file is always whole.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from filelock import FileLock
from huggingface_hub.utils import tqdm

from ..errors import CheckpointError, FasterRCNNHubError

CACHE_ENVIRONMENT_VARIABLE = "FASTER_RCNN_HUB_CACHE"
_CHUNK_SIZE = 1 << 20


class DownloadError(FasterRCNNHubError):
    """A checkpoint could not be downloaded (network failure, HTTP error, interrupted transfer)."""


class ChecksumMismatchError(CheckpointError):
    """A checkpoint's SHA-256 does not start with the digits its publisher gave."""


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """The file's SHA-256 as 64 hex digits, read in chunks (checkpoints are hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """Where downloads are kept: `$FASTER_RCNN_HUB_CACHE`, else `<Hugging Face home>/faster-rcnn-hub`."""
    if os.environ.get(CACHE_ENVIRONMENT_VARIABLE):
        return Path(os.environ[CACHE_ENVIRONMENT_VARIABLE]).expanduser()
    if os.environ.get("HF_HOME"):
        hf_home = Path(os.environ["HF_HOME"]).expanduser()
    elif os.environ.get("XDG_CACHE_HOME"):
        hf_home = Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "huggingface"
    else:
        hf_home = Path.home() / ".cache" / "huggingface"
    return hf_home / "faster-rcnn-hub"


def verify_sha256_prefix(path: Path, expected_prefix: str) -> str:
    """The file's SHA-256, or a `ChecksumMismatchError` if it does not start with `expected_prefix`."""
    digest = file_sha256(path)
    if not digest.startswith(expected_prefix.lower()):
        raise ChecksumMismatchError(
            f"{path} has SHA-256 {digest}, which does not start with {expected_prefix}, the prefix its publisher "
            "gave: the file is corrupt or not the published checkpoint. It was kept for inspection; delete it to "
            "download it again."
        )
    return digest


def download_checkpoint(
    url: str,
    sha256_prefix: str,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download `url` into the cache (or reuse the cached file) and verify its SHA-256 prefix.

    An interrupted download leaves `<name>.part` behind; the next call resumes it with an HTTP Range request.

    Args:
        url: An `http://` or `https://` URL of a file.
        sha256_prefix: The leading hex digits of the file's SHA-256 (mmdetection puts 8 in its file names).
        cache_dir: Cache folder; defaults to `default_cache_dir()`. Files go to its `checkpoints/` subfolder.
        progress: Show a progress bar on stderr.
        timeout: Seconds to wait for the server before giving up.

    Returns:
        The path of the verified file.

    Raises:
        DownloadError: the server cannot be reached, answers with an error, or the transfer breaks off.
        ChecksumMismatchError: the file's SHA-256 does not start with `sha256_prefix`. A fresh download that fails
            the check is kept as `<name>.corrupt`; a file already in the cache is left where it is.
    """
    if not url.startswith(("http://", "https://")):
        raise DownloadError(f"Only http:// and https:// URLs can be downloaded, got {url!r}.")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = folder / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / url.rsplit("/", 1)[-1]
    # One process at a time per file: two appending to the same partial file would corrupt it.
    with FileLock(str(target) + ".lock"):
        if target.exists():
            verify_sha256_prefix(target, sha256_prefix)
            return target
        partial = target.with_name(target.name + ".part")
        _fetch(url, partial, progress, timeout)
        digest = file_sha256(partial)
        if not digest.startswith(sha256_prefix.lower()):
            # Resuming this file again would only append to bad data: move it aside (never delete it).
            corrupt = target.with_name(target.name + ".corrupt")
            partial.replace(corrupt)
            raise ChecksumMismatchError(
                f"The download of {url} is corrupt: its SHA-256 is {digest}, but its published file name says it "
                f"starts with {sha256_prefix}. It was kept as {corrupt}; run the command again to download it afresh."
            )
        partial.replace(target)
    return target


def _fetch(url: str, partial: Path, progress: bool, timeout: float) -> None:
    """Download `url` into `partial`, continuing from its current length when the server allows it."""
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "faster-rcnn-hub"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # The partial file is not shorter than the file on the server: it cannot be resumed, start over.
            partial.unlink()
            return _fetch(url, partial, progress, timeout)
        raise DownloadError(f"Downloading {url} failed: HTTP {error.code} {error.reason}.") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"Cannot download {url}: {reason}. Check the network connection and try again.") from error

    with response:
        resumed = offset > 0 and response.status == 206 and _range_start(response) == offset
        if not resumed:
            offset = 0  # a server that ignores Range sends the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else None
        written = offset
        with open(partial, "ab" if resumed else "wb") as file, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=partial.name.removesuffix(".part"), disable=not progress,
        ) as bar:  # fmt: skip
            try:
                while chunk := response.read(_CHUNK_SIZE):
                    file.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as error:
                raise _interrupted(url, partial, written, total, error) from error
    # http.client ends a body cut short by a closed connection without an error: compare with Content-Length.
    if total is not None and written != total:
        raise _interrupted(url, partial, written, total, "the connection closed early")


def _range_start(response: http.client.HTTPResponse) -> int | None:
    content_range = response.headers.get("Content-Range", "")  # "bytes START-END/TOTAL"
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _interrupted(url: str, partial: Path, written: int, total: int | None, reason: object) -> DownloadError:
    of_total = f" of {total}" if total is not None else ""
    return DownloadError(
        f"The download of {url} was interrupted after {written}{of_total} bytes ({reason}). The partial file "
        f"{partial} is kept: run the same command again to resume it."
    )


__all__ = [
    "CACHE_ENVIRONMENT_VARIABLE",
    "ChecksumMismatchError",
    "DownloadError",
    "default_cache_dir",
    "download_checkpoint",
    "file_sha256",
    "verify_sha256_prefix",
]
