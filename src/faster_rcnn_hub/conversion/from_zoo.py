"""Converting a model of mmdetection's model zoo by name: check support, download, verify, convert."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import FasterRCNNHubError, UnsupportedArchitectureError
from ..zoo import get_zoo_entry
from ..zoo.download import download_checkpoint
from .config_mapping import zoo_support
from .convert import ConversionResult, convert_checkpoint


def convert_zoo_model(
    name: str,
    output_dir: str | os.PathLike,
    config_path: str | os.PathLike | None = None,
    classes: str | list[str] | None = None,
    overwrite: bool = False,
    model_id: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> ConversionResult:
    """Download the model-zoo checkpoint `name` (or reuse the cached one), verify it, and convert it.

    Args:
        name: A name from `faster-rcnn-hub zoo` (mmdetection's model name, or its config file's stem).
        output_dir: Folder to create (see `convert_checkpoint`).
        config_path: An mmdetection config to use instead of the zoo table's.
        classes: Class names (see `convert_checkpoint`).
        overwrite: Replace an existing `output_dir`.
        model_id: What the card's usage code loads (see `convert_checkpoint`).
        cache_dir: Download cache (default: `download.default_cache_dir()`).
        progress: Show a download progress bar.

    Raises:
        UnknownModelError: `name` is not in the table (the message suggests close names).
        UnsupportedArchitectureError: the entry's architecture cannot run here yet; nothing is downloaded.
        DownloadError, ChecksumMismatchError: the download failed or the file is not the published one.
    """
    entry = get_zoo_entry(name)
    # Refuse before downloading hundreds of megabytes that could not be used.
    status = zoo_support(entry)
    if not status.supported and config_path is None:
        raise UnsupportedArchitectureError(
            f"{entry.name} cannot be converted yet: {status.reason} (`faster-rcnn-hub zoo` marks the entries "
            "that convert.)"
        )
    if Path(output_dir).exists() and not overwrite:
        raise FasterRCNNHubError(f"{output_dir} already exists; pass overwrite=True (--overwrite) to replace it.")
    checkpoint = download_checkpoint(entry.url, entry.sha256_prefix, cache_dir=cache_dir, progress=progress)
    return convert_checkpoint(
        checkpoint,
        output_dir,
        config_path=config_path,
        classes=classes,
        overwrite=overwrite,
        source_url=entry.url,
        model_id=model_id,
    )
