"""Detection on a video clip: every frame through the model, an annotated copy of the clip and a JSON-lines
report (one line per frame), with the clip's length limited so that one visitor cannot hold the model for long."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..errors import FasterRCNNHubError
from .analysis import annotate_for_display, select_detections

# A CPU runs a COCO model at about one frame a second: 20 s at 30 frames per second is 10 minutes already.
MAX_VIDEO_SECONDS = 20.0
# VP8 in WebM: what OpenCV's own FFmpeg writes and every browser plays (its wheels cannot write H.264).
VIDEO_CODEC = "VP80"
VIDEO_SUFFIX = ".webm"
FALLBACK_FPS = 25.0


@dataclass
class VideoResult:
    """An annotated clip (shown at the image tab's display size; the report's boxes are in the clip's pixels):
    the video file, its JSON-lines report, the number of frames and the clip's frame rate."""

    video_path: Path
    report_path: Path
    frames: int
    fps: float
    detections: int

    def summary(self) -> str:
        seconds = self.frames / self.fps
        return (
            f"**{self.frames} frames** ({seconds:.1f} s at {self.fps:.0f} frames/s) · **{self.detections} "
            f"detections** in all · report: one JSON line per frame"
        )


def annotate_video(
    video_path: str | os.PathLike,
    detector: Any,
    output_dir: str | os.PathLike,
    threshold: float = 0.5,
    classes: Collection[str] = (),
    video_name: str | None = None,
    max_seconds: float = MAX_VIDEO_SECONDS,
    progress: Callable[[int, int], None] | None = None,
) -> VideoResult:
    """Detect objects in every frame of the clip at `video_path` and write `<name>_detections.webm` and
    `<name>_detections.jsonl` (per frame: `frame`, `time_s`, `detections`) into `output_dir`.

    Args:
        video_path: The clip (any format OpenCV's FFmpeg reads: MP4, WebM, AVI, ...).
        detector: A `Detector`.
        output_dir: Where the two files go.
        threshold: Keep detections scoring above this.
        classes: Keep only these class names (empty: all).
        video_name: What messages and file names call the clip (default: the file's name).
        max_seconds: Longer clips are refused before any frame runs.
        progress: Called with (frames done, frames in all) after each frame.

    Raises:
        FasterRCNNHubError: The file is not a readable video, or the clip is longer than `max_seconds`.
    """
    video_name = video_name or Path(video_path).name
    capture = cv2.VideoCapture(str(video_path))
    try:
        if not capture.isOpened():
            raise FasterRCNNHubError(f"{video_name} is not a readable video (MP4, WebM, AVI, MOV, ...).")
        fps = capture.get(cv2.CAP_PROP_FPS) or FALLBACK_FPS
        expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if expected / fps > max_seconds:
            raise FasterRCNNHubError(
                f"{video_name} is {expected / fps:.1f} s long; this demo annotates clips of up to {max_seconds:.0f} s. "
                "Trim it first (or run `faster-rcnn-hub detect` on its frames)."
            )
        # The frame count in a file's header can be wrong: never read more than the limit allows.
        limit = int(max_seconds * fps) + 1
        return _annotate_frames(capture, detector, Path(output_dir), video_name, fps, max(expected, 1), limit,
                                threshold, classes, progress)  # fmt: skip
    finally:
        capture.release()


def _annotate_frames(
    capture: Any,
    detector: Any,
    output_dir: Path,
    video_name: str,
    fps: float,
    expected: int,
    limit: int,
    threshold: float,
    classes: Collection[str],
    progress: Callable[[int, int], None] | None,
) -> VideoResult:
    stem = Path(video_name).stem or "video"
    output_dir.mkdir(parents=True, exist_ok=True)
    video_path = output_dir / f"{stem}_detections{VIDEO_SUFFIX}"
    report_path = output_dir / f"{stem}_detections.jsonl"
    writer = None
    frames = detections_in_all = 0
    try:
        with report_path.open("w", encoding="utf-8") as report:
            while frames < limit:
                ok, bgr = capture.read()
                if not ok:
                    break
                image = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
                kept = select_detections(detector(image, threshold=0.0), threshold, classes)
                # Resized as the image tab's pictures are (longer side 800 to 1600 px), so labels read the same.
                annotated = annotate_for_display(image, kept)
                if writer is None:
                    codec = cv2.VideoWriter_fourcc(*VIDEO_CODEC)
                    writer = cv2.VideoWriter(str(video_path), codec, fps, annotated.size)
                writer.write(np.asarray(annotated)[:, :, ::-1])
                line = {"frame": frames, "time_s": round(frames / fps, 4), "detections": [d.to_dict() for d in kept]}
                report.write(json.dumps(line) + "\n")
                frames += 1
                detections_in_all += len(kept)
                if progress is not None:
                    progress(frames, max(expected, frames))
    finally:
        if writer is not None:
            writer.release()
    if frames == 0:
        raise FasterRCNNHubError(f"{video_name} has no frame that can be decoded.")
    return VideoResult(video_path, report_path, frames, fps, detections_in_all)
