"""The demo's video detection without a browser: every frame annotated, one report line per frame with the
detections the Python API gives for that frame, and clips over the length limit refused before any frame runs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from faster_rcnn_hub.data.synthetic import generate_image
from faster_rcnn_hub.default_model import default_model_dir
from faster_rcnn_hub.demo.video import annotate_video
from faster_rcnn_hub.detection import Detector
from faster_rcnn_hub.errors import FasterRCNNHubError


def write_clip(path, frames: int, fps: float = 10.0) -> None:
    """A clip of synthetic shapes sliding right by 4 px a frame, in VP8 WebM (browsers play it)."""
    first = np.asarray(generate_image(1000003, 1).image)[:128, :160]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), fps, (160, 128))
    for index in range(frames):
        writer.write(np.ascontiguousarray(np.roll(first, 4 * index, axis=1)[:, :, ::-1]))
    writer.release()


def decoded_frames(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1].copy())
    capture.release()
    return frames


def test_every_frame_is_annotated_and_reported_as_the_python_api_detects_it(tmp_path):
    clip = tmp_path / "shapes.webm"
    write_clip(clip, frames=5)
    detector = Detector(default_model_dir(), device="cpu")
    seen = []
    result = annotate_video(clip, detector, tmp_path / "out", threshold=0.5, progress=lambda *done: seen.append(done))
    assert (result.frames, result.fps) == (5, 10.0)
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    lines = [json.loads(line) for line in result.report_path.read_text().splitlines()]
    assert [line["frame"] for line in lines] == [0, 1, 2, 3, 4]
    assert [line["time_s"] for line in lines] == [0.0, 0.1, 0.2, 0.3, 0.4]
    for line, frame in zip(lines, decoded_frames(clip)):
        assert line["detections"] == [d.to_dict() for d in detector(frame, threshold=0.5)]
    assert sum(len(line["detections"]) for line in lines) == result.detections > 0
    annotated = decoded_frames(result.video_path)
    assert result.video_path.suffix == ".webm" and len(annotated) == 5 and annotated[0].shape == (640, 800, 3)

    only_circles = annotate_video(clip, detector, tmp_path / "circles", threshold=0.5, classes=["circle"])
    lines = [json.loads(line) for line in only_circles.report_path.read_text().splitlines()]
    labels = {detection["label"] for line in lines for detection in line["detections"]}
    assert labels == {"circle"}


def test_long_clips_and_unreadable_files_are_refused_in_plain_words(tmp_path):
    clip = tmp_path / "long.webm"
    write_clip(clip, frames=12)
    calls = []

    def detector(*args, **kwargs):
        calls.append(args)
        return []

    with pytest.raises(FasterRCNNHubError, match=r"long.webm is 1.2 s long; this demo annotates clips of up to 1 s"):
        annotate_video(clip, detector, tmp_path / "out", max_seconds=1.0)
    assert calls == []  # refused before any frame ran
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(FasterRCNNHubError, match="holiday.mp4 is not a readable video"):
        annotate_video(tmp_path / "notes.mp4", detector, tmp_path / "out", video_name="holiday.mp4")
