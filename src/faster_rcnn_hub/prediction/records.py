"""The JSON-lines output of `predict`: reading it back to resume, appending durably, and merging the parts that
the processes of a multi-process run write.

One line per image: `{"path": ..., "width": ..., "height": ..., "detections": [...]}`, or
`{"path": ..., "error": ...}` for an image that could not be read. Each detection is `Detection.to_dict()`:
`label`, `label_id`, `score`, `box`, and for a mask model `mask`, its COCO RLE (`{"size": [height, width],
"counts": str}`). Each batch of lines is appended with one
write, then flushed and fsync'ed, so a killed run loses at most the batch it was working on; a line torn by the
kill (the last one) is cut off when the run is resumed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import PredictionOutputError
from ..output_files import check_writable_folder

PART_SUFFIX = ".part-"


def part_path(output: Path, process_index: int) -> Path:
    """The file process `process_index` appends to in a multi-process run: `OUT.jsonl.part-00003`."""
    return output.with_name(f"{output.name}{PART_SUFFIX}{process_index:05d}")


def part_paths(output: Path) -> list[Path]:
    """Part files of earlier or current multi-process runs into `output` (any number of processes), sorted."""
    return sorted(output.parent.glob(f"{glob_escape(output.name)}{PART_SUFFIX}[0-9]*"))


def glob_escape(name: str) -> str:
    return "".join(f"[{character}]" if character in "*?[" else character for character in name)


def check_output_path(output: Path) -> None:
    if output.is_dir():
        raise PredictionOutputError(f"--output {output} is a folder; give a file name such as {output / 'detections.jsonl'}.")
    if output.exists() and not output.is_file():
        raise PredictionOutputError(f"--output {output} exists and is not a regular file.")
    check_writable_folder(output.parent, f"--output {output}")


def read_records(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """The records of a JSON-lines output file (none when it does not exist or is empty).

    `predict` writes whole lines, so only the bytes after the last newline can be torn by a kill, and they are
    the start of a record (`{"path": ...`): those are ignored, and with `repair` cut off the file, so that
    appending continues on a clean line. Anything else that is not a record (a complete line, or a tail that is
    not the start of one, as in a compact JSON file or notes) means the file is not this command's output:
    it is refused, and nothing is touched.

    Raises:
        PredictionOutputError: The file holds something `predict` did not write.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    # Bytes after the last newline belong to a line whose write did not complete.
    kept = data.rfind(b"\n") + 1
    complete_lines = data[:kept].split(b"\n")[:-1]
    records = []
    for number, line in enumerate(complete_lines, start=1):
        if not line.strip():
            continue
        record, problem = _parse(line)
        if record is None:
            raise PredictionOutputError(_foreign_file_message(path, f"line {number}", line, problem))
        records.append(record)
    tail = data[kept:]
    if tail and not _starts_a_record(tail):
        raise PredictionOutputError(_foreign_file_message(path, f"line {len(complete_lines) + 1}", tail))
    if repair and tail:
        with open(path, "r+b") as handle:
            handle.truncate(kept)
            handle.flush()
            os.fsync(handle.fileno())
    return records


# Every record `predict` writes is `json.dumps` of a dict whose first key is "path".
_RECORD_START = b'{"path": '


def _starts_a_record(tail: bytes) -> bool:
    """Whether `tail` (bytes after the last newline) can be the beginning of a record cut short by a kill."""
    return tail.startswith(_RECORD_START) or _RECORD_START.startswith(tail)


def _foreign_file_message(path: Path, where: str, content: bytes, problem: str | None = None) -> str:
    why = f"; {problem}" if problem else ""
    return (
        f"{path}, {where}, is not a detection record ({content[:80]!r}{why}): the file is not the output of "
        "predict, so it is left untouched. Choose another --output, or move the file away."
    )


def resolved_key(path: str) -> str:
    """The key a record's image is known by: its absolute path with links resolved, so that `imgs/a.png` and
    `/data/imgs/a.png` are the same image (relative paths are taken from the current folder)."""
    return str(Path(path).resolve())


def _parse(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The record on `line`, or `None` and what is wrong with it."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, None
    problem = record_problem(record)
    return (None, problem) if problem else (record, None)


def record_problem(record: Any) -> str | None:
    """What makes `record` something `predict` does not write (`None` when it is one of its records)."""
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        return "no \"path\""
    if "error" in record:
        return None if isinstance(record["error"], str) else "its error is not a string"
    height, width = record.get("height"), record.get("width")
    if not (_is_count(height) and _is_count(width)):
        return "no width and height"
    detections = record.get("detections")
    if not isinstance(detections, list):
        return "no list of detections"
    for number, detection in enumerate(detections):
        problem = _detection_problem(detection, height, width)
        if problem:
            return f"detection {number} {problem}"
    return None


def _detection_problem(detection: Any, height: int, width: int) -> str | None:
    if not isinstance(detection, dict):
        return "is not an object"
    if not (isinstance(detection.get("label"), str) and _is_count(detection.get("label_id"), minimum=0)):
        return "has no label and label_id"
    box = detection.get("box")
    if not (_is_number(detection.get("score")) and isinstance(box, list) and len(box) == 4
            and all(_is_number(value) for value in box)):  # fmt: skip
        return "has no score and box"
    if "mask" in detection:
        mask = detection["mask"]
        if not (isinstance(mask, dict) and isinstance(mask.get("counts"), str)):
            return 'has a mask that is not COCO RLE {"size": [height, width], "counts": str}'
        if mask.get("size") != [height, width]:
            return f"has a mask of size {mask.get('size')!r}, not the image's [height, width] = [{height}, {width}]"
    return None


def _is_count(value: Any, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def append_records(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append `records` as lines with one write, then flush and fsync: on disk once this returns."""
    text = "".join(json.dumps(record) + "\n" for record in records)
    if not text:
        return
    with open(path, "ab") as handle:
        handle.write(text.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def merge_parts(output: Path) -> int:
    """Fold the part files into `output`: every image once, however its path is spelled (its first record, or its first
    detections when an earlier attempt recorded an error), sorted by path, written
    aside and renamed over `output`; then the parts are removed. Returns the number of records.

    A kill at any point leaves the records readable: before the rename the parts and the old `output` are intact;
    after it, parts that still exist only repeat what `output` holds, and reading drops the repeats.
    """
    by_image: dict[str, dict[str, Any]] = {}
    parts = part_paths(output)
    for source in [output, *parts]:
        for record in read_records(source):
            key = resolved_key(record["path"])
            known = by_image.get(key)
            if known is None or ("error" in known and "error" not in record):  # a retried image replaces its error
                by_image[key] = record
    ordered = sorted(by_image.values(), key=lambda record: record["path"])
    existing = read_records(output)
    if not parts and existing == ordered:
        return len(ordered)
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write("".join(json.dumps(record) + "\n" for record in ordered).encode("utf-8"))
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    for part in parts:
        part.unlink()
    return len(ordered)
