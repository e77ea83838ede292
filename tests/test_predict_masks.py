"""`predict` with a Mask R-CNN: records carry each detection's mask as COCO RLE; resuming after a torn line
redoes the image with its masks; records with broken masks are refused."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import IMAGES

from faster_rcnn_hub.detection import Detector
from faster_rcnn_hub.errors import PredictionOutputError
from faster_rcnn_hub.prediction import predict_to_jsonl
from faster_rcnn_hub.prediction.records import read_records

MASK_CASE = "tiny_mask_r50_fpn_coco"
THRESHOLD = 0.05


def test_records_carry_masks_and_a_torn_record_is_redone_with_them(converted_model, tmp_path):
    model = converted_model(MASK_CASE)
    images = tmp_path / "images"
    images.mkdir()
    for name in ("coffee.png", "tiny_noise.png"):
        shutil.copy(IMAGES / name, images / name)
    output = tmp_path / "out.jsonl"
    predict_to_jsonl(str(model), str(images), output, threshold=THRESHOLD, num_workers=0, device="cpu",
                     progress=False)  # fmt: skip
    records = read_records(output)
    expected = [detection.to_dict() for detection in Detector(model, device="cpu")(records[0]["path"], THRESHOLD)]
    assert records[0]["detections"] == expected and expected
    for record in records:
        sizes = [detection["mask"]["size"] for detection in record["detections"]]
        assert sizes == [[record["height"], record["width"]]] * len(record["detections"])
    complete = output.read_text()
    lines = complete.splitlines(keepends=True)
    torn_at = lines[1].index('"counts"') + 12 if '"counts"' in lines[1] else 30
    output.write_text(lines[0] + lines[1][:torn_at])  # killed while writing the second image's masks
    summary = predict_to_jsonl(str(model), str(images), output, threshold=THRESHOLD, num_workers=0, device="cpu",
                               progress=False)  # fmt: skip
    assert (summary.already_done, summary.predicted) == (1, 1)
    redone = [json.loads(line) for line in output.read_text().splitlines()]
    assert redone[0] == json.loads(lines[0])
    assert [detection["mask"] for detection in redone[1]["detections"]] == [
        detection["mask"] for detection in json.loads(lines[1])["detections"]
    ]


@pytest.mark.parametrize(
    "mask,message",
    [
        ({"size": [4, 5], "counts": "0"}, r"mask of size \[4, 5\], not the image's \[height, width\] = \[4, 6\]"),
        ({"size": [4, 6], "counts": [24]}, "not COCO RLE"),
    ],
)
def test_a_record_with_a_broken_mask_is_refused_naming_it(tmp_path, mask, message):
    detection = {"label": "cat", "label_id": 0, "score": 0.9, "box": [0, 0, 2, 2], "mask": mask}
    content = json.dumps({"path": "a.png", "width": 6, "height": 4, "detections": [detection]}) + "\n"
    output = tmp_path / "out.jsonl"
    output.write_text(content)
    with pytest.raises(PredictionOutputError, match=message):
        read_records(output, repair=True)
    assert output.read_text() == content
