"""Binary masks as COCO run-length encoding (RLE), byte for byte what pycocotools' `mask.encode` writes.

The model code may not depend on pycocotools, so the encoding is written here: the mask is read in column-major
(Fortran) order, as runs that alternate between 0 and 1 starting with 0, and the run lengths are compressed into
a string as pycocotools' `rleToString` does (each count after the second stored as the difference to the count two
before, in 5-bit groups with a continuation bit, offset by 48 into printable ASCII).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def run_lengths(mask: np.ndarray) -> list[int]:
    """Lengths of the alternating runs of 0 and 1 of a 2-D mask in column-major order, starting with 0s."""
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    if flat.size == 0:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    boundaries = np.concatenate([[0], changes, [flat.size]])
    lengths = np.diff(boundaries).tolist()
    # The first run counts 0s; a mask that starts with a 1 begins with an empty run of 0s.
    return [0, *lengths] if flat[0] else lengths


def compress_counts(counts: list[int]) -> str:
    """pycocotools' `rleToString`: run lengths as its compact ASCII string."""
    characters = []
    for index, count in enumerate(counts):
        value = int(count) - (int(counts[index - 2]) if index > 2 else 0)
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5  # an arithmetic shift, as in C on a signed long
            more = value != -1 if chunk & 0x10 else value != 0
            if more:
                chunk |= 0x20
            characters.append(chr(chunk + 48))
    return "".join(characters)


def decompress_counts(counts: str) -> list[int]:
    """pycocotools' `rleFrString`: run lengths from its compact ASCII string (the inverse of `compress_counts`).

    Raises:
        ValueError: `counts` holds a character outside the encoding's 64, or ends in the middle of a number.
    """
    lengths: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise ValueError("The mask's RLE counts string ends in the middle of a number.")
            chunk = ord(counts[position]) - 48
            if not 0 <= chunk < 64:
                raise ValueError(
                    f"The mask's RLE counts string holds {counts[position]!r}, not a character of COCO's RLE text."
                )
            value |= (chunk & 0x1F) << shift
            more = bool(chunk & 0x20)
            position += 1
            shift += 5
            if not more and chunk & 0x10:
                value |= -1 << shift  # a negative difference: sign-extend
        # Runs after the second are stored as differences from the run two before.
        if len(lengths) > 2:
            value += lengths[-2]
        lengths.append(value)
    return lengths


def encode_rle(mask: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """`{"size": [height, width], "counts": str}` for a 2-D binary mask, as `pycocotools.mask.encode` gives it
    (with `counts` decoded to a string, the form COCO result files hold)."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode_rle takes one 2-D mask, got shape {mask.shape}.")
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": compress_counts(run_lengths(mask))}


__all__ = ["compress_counts", "decompress_counts", "encode_rle", "run_lengths"]
