"""The image files a `predict` run covers: a folder (searched recursively) or a glob pattern."""

from __future__ import annotations

import glob
from pathlib import Path

from ..errors import NoImagesFoundError

# Files with these extensions are taken from a folder; a glob pattern takes whatever it matches.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"})
_GLOB_CHARACTERS = set("*?[")


def list_images(source: str) -> list[str]:
    """The image paths of `source`, sorted, each once.

    Args:
        source: A folder (every file with an image extension below it, recursively), a glob pattern (`**` matches
            folders recursively; every file it matches is taken) or one image file.

    Returns:
        Paths as strings, relative when `source` is relative: they identify the images in the output.
    """
    path = Path(source)
    if path.is_dir():
        found = [item for item in path.rglob("*") if item.suffix.lower() in IMAGE_EXTENSIONS and item.is_file()]
        if not found:
            raise NoImagesFoundError(
                f"No image files in {source} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}, in subfolders "
                "too); pass a glob pattern such as 'photos/*.raw.png' for other names."
            )
        return sorted({str(item) for item in found})
    if _GLOB_CHARACTERS & set(source):
        found = [item for item in glob.glob(source, recursive=True) if Path(item).is_file()]
        if not found:
            raise NoImagesFoundError(f"The pattern {source!r} matches no file; check it (quote it in the shell).")
        return sorted(set(found))
    if path.is_file():
        return [source]
    raise NoImagesFoundError(f"{source} is neither a folder, an image file nor a glob pattern that matches files.")
