"""A set of proposals per image, kept in one `.npz` file: mmdetection's `proposal_file`, without pickle.

The file holds `image_ids` (int64, one per image), `offsets` (int64, one more: image `i`'s boxes are rows
`offsets[i]:offsets[i + 1]`), `boxes` (float32 `(n, 4)` x1, y1, x2, y2 in original-image pixels, in each image's
ranking), `seconds` (float64, the time each image's proposals took; NaN where unknown) and `method` (text).
It is read with `allow_pickle=False`, so a file cannot run code.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InvalidAnnotationError

_KEYS = ("image_ids", "offsets", "boxes", "seconds", "method")


@dataclass
class ProposalSet:
    """Proposals of the images of a data set, keyed by COCO image id.

    Attributes:
        boxes: Image id -> `(n, 4)` float32 boxes, x1, y1, x2, y2 in original-image pixels, best first.
        method: How they were made (e.g. `"selective-search-fast"`).
        seconds: Image id -> seconds the proposals of that image took, where measured.
    """

    boxes: dict[int, np.ndarray]
    method: str = ""
    seconds: dict[int, float] = field(default_factory=dict)

    def for_image(self, image_id: int) -> np.ndarray:
        """The boxes of one image; a clear error when the set has none for it."""
        try:
            return self.boxes[int(image_id)]
        except (KeyError, TypeError, ValueError):
            raise InvalidAnnotationError(
                f"The proposals ({self.method or 'proposal file'}) have no entry for image id {image_id!r}; they were "
                "made for another data set."
            ) from None

    def covers(self, image_ids: list) -> bool:
        return all(isinstance(image_id, (int, np.integer)) and int(image_id) in self.boxes for image_id in image_ids)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the set to `path` (`.npz`), complete or not at all (written aside, then renamed)."""
        path = Path(path)
        image_ids = sorted(self.boxes)
        counts = [len(self.boxes[image_id]) for image_id in image_ids]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        boxes = (
            np.concatenate([self.boxes[image_id] for image_id in image_ids]).astype(np.float32)
            if image_ids
            else np.zeros((0, 4), dtype=np.float32)
        )
        seconds = np.array([self.seconds.get(image_id, np.nan) for image_id in image_ids], dtype=np.float64)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".tmp-{path.name}")
        with open(temporary, "wb") as file:
            np.savez(
                file,
                image_ids=np.asarray(image_ids, dtype=np.int64),
                offsets=offsets,
                boxes=boxes.reshape(-1, 4),
                seconds=seconds,
                method=np.asarray(self.method),
            )
        os.replace(temporary, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ProposalSet:
        """Read a file written by `save`; a clear error when it is missing or not such a file."""
        path = Path(path)
        if not path.is_file():
            raise InvalidAnnotationError(f"Proposal file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [key for key in _KEYS if key not in archive.files]
                if missing:
                    raise InvalidAnnotationError(
                        f"{path} is not a proposal file of faster-rcnn-hub: it lacks {', '.join(missing)}."
                    )
                arrays = {key: archive[key] for key in _KEYS}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            if isinstance(error, InvalidAnnotationError):
                raise
            raise InvalidAnnotationError(f"{path} cannot be read as a proposal file (.npz): {error}") from error
        return cls._from_arrays(arrays, path)

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray], path: Path) -> ProposalSet:
        image_ids, offsets, boxes, seconds = (arrays[key] for key in ("image_ids", "offsets", "boxes", "seconds"))
        consistent = (
            image_ids.ndim == 1
            and offsets.shape == (len(image_ids) + 1,)
            and seconds.shape == image_ids.shape
            and boxes.ndim == 2
            and boxes.shape[1] == 4
            and (len(offsets) == 0 or (offsets[0] == 0 and offsets[-1] == len(boxes)))
            and bool(np.all(np.diff(offsets) >= 0))
            and len(np.unique(image_ids)) == len(image_ids)
        )
        if not consistent:
            raise InvalidAnnotationError(f"{path} is damaged: its image ids, offsets and boxes do not agree.")
        if not bool(np.isfinite(boxes).all()):
            raise InvalidAnnotationError(f"{path} holds NaN or infinite boxes.")
        by_image = {
            int(image_id): boxes[start:stop].astype(np.float32)
            for image_id, start, stop in zip(image_ids, offsets[:-1], offsets[1:])
        }
        timed = {int(image_id): float(value) for image_id, value in zip(image_ids, seconds) if np.isfinite(value)}
        return cls(boxes=by_image, method=str(arrays["method"]), seconds=timed)


__all__ = ["ProposalSet"]
