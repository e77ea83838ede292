"""`faster-rcnn-hub predict` on one process: bad input, unreadable images, torn output lines."""

from __future__ import annotations

import json

import pytest

from faster_rcnn_hub.cli import main
from faster_rcnn_hub.errors import ModelNotFoundError, NoImagesFoundError, PredictionOutputError
from faster_rcnn_hub.prediction import predict_to_jsonl
from faster_rcnn_hub.prediction.records import read_records
from training_helpers import tiny_dataset


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tiny_dataset(tmp_path_factory.mktemp("predict") / "data", num_images=3) / "images"
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_bad_input_gets_a_clear_error(images, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoImagesFoundError, match="No image files"):
        predict_to_jsonl(None, str(empty), tmp_path / "out.jsonl")
    with pytest.raises(NoImagesFoundError, match="matches no file"):
        predict_to_jsonl(None, str(images / "*.jpg"), tmp_path / "out.jsonl")
    with pytest.raises(PredictionOutputError, match="is a folder"):
        predict_to_jsonl(None, str(images), tmp_path)
    with pytest.raises(ModelNotFoundError, match="not found"):
        predict_to_jsonl(str(tmp_path / "no-model"), str(images), tmp_path / "out.jsonl")
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        predict_to_jsonl(str(empty), str(images), tmp_path / "out.jsonl")
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text("a,b\n1,2\n3,4\n")
    assert main(["predict", "--images", str(images), "--output", str(foreign), "--no-progress"]) == 2
    assert "line 1, is not a detection record" in capsys.readouterr().err
    assert foreign.read_text() == "a,b\n1,2\n3,4\n"
    assert not (tmp_path / "out.jsonl").exists()


def test_unreadable_images_are_recorded_and_can_be_retried(images, tmp_path, capsys):
    broken = images / "000001.png"
    good_bytes = broken.read_bytes()
    broken.write_bytes(good_bytes[:100])
    output = tmp_path / "out.jsonl"
    try:
        summary = predict_to_jsonl(None, str(images), output, num_workers=0, progress=False)
        assert (summary.images, summary.predicted, summary.errors) == (3, 3, 1)
        assert f"warning: skipped {broken}" in capsys.readouterr().err
        records = read_records(output)
        assert [record["path"] for record in records] == [str(images / f"00000{index}.png") for index in range(3)]
        assert "truncated" in records[1]["error"] or "corrupt" in records[1]["error"]
        assert records[0]["width"] == records[0]["height"] == 96 and isinstance(records[0]["detections"], list)
        again = predict_to_jsonl(None, str(images), output, num_workers=0, progress=False)
        assert (again.already_done, again.predicted) == (3, 0)
    finally:
        broken.write_bytes(good_bytes)
    retried = predict_to_jsonl(None, str(images), output, num_workers=0, progress=False, retry_errors=True)
    assert (retried.already_done, retried.predicted, retried.errors, retried.records) == (2, 1, 0, 3)
    records = read_records(output)
    assert len(records) == 3 and all("detections" in record for record in records)


def test_a_torn_last_line_is_cut_off_and_redone(images, tmp_path):
    output = tmp_path / "out.jsonl"
    predict_to_jsonl(None, str(images), output, num_workers=0, progress=False)
    complete = output.read_text()
    lines = complete.splitlines(keepends=True)
    output.write_text("".join(lines[:2]) + lines[2][:25])
    summary = predict_to_jsonl(None, str(images), output, num_workers=0, progress=False)
    assert (summary.already_done, summary.predicted) == (2, 1)
    # The redone image ran alone instead of in a batch of 3: the same detections, up to float rounding.
    redone, expected = (json.loads(text.splitlines()[2]) for text in (output.read_text(), complete))
    assert output.read_text().splitlines()[:2] == complete.splitlines()[:2]
    assert [d["label"] for d in redone["detections"]] == [d["label"] for d in expected["detections"]]
    for mine, theirs in zip(redone["detections"], expected["detections"]):
        assert mine["score"] == pytest.approx(theirs["score"], abs=1e-5)
        assert mine["box"] == pytest.approx(theirs["box"], abs=1e-3)
    assert [json.loads(line)["path"] for line in complete.splitlines()] == sorted(str(p) for p in images.glob("*.png"))


@pytest.mark.parametrize(
    "content",
    [
        b'{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [], "categories": []}',  # compact COCO
        b'{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [], "categories": []}\n',
        b"notes for the shoot\nremember the tripod\n",
        b"notes without a final newline",
        b'{"path": "a.png", "width": 4, "height": 4, "detections": []}\n{"not": "a record"}\n',
        b'{"path": "a.png", "width": 4, "height": 4, "detections": []}\nfree text at the end',
        b'{"path": "a.png", "width": 4, "height": 4}\n',  # no detections
        b'{"path": "a.png", "width": 4, "height": 4, "detections": [{"label": "cat", "label_id": 0, "score": 0.9, '
        b'"box": [0, 0, 2, 2], "mask": {"size": [4, 5], "counts": "0"}}]}\n',  # a mask of another size
        b'{"path": "a.png", "width": 4, "height": 4, "detections": [{"label": "cat", "label_id": 0, "score": 0.9, '
        b'"box": [0, 0, 2, 2], "mask": [[0, 1]]}]}\n',  # a mask that is not RLE
    ],
)
def test_a_file_predict_did_not_write_is_refused_and_left_untouched(images, tmp_path, capsys, content):
    foreign = tmp_path / "annotations.json"
    foreign.write_bytes(content)
    assert main(["predict", "--images", str(images), "--output", str(foreign), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "error:" in error and "is not the output of predict" in error
    assert foreign.read_bytes() == content


def test_only_the_torn_start_of_a_record_is_cut_off(tmp_path):
    record = b'{"path": "a.png", "width": 4, "height": 4, "detections": []}\n'
    for torn in (b'{"pa', b'{"path": "b.p'):
        output = tmp_path / "out.jsonl"
        output.write_bytes(record + torn)
        assert read_records(output, repair=True) == [json.loads(record)]
        assert output.read_bytes() == record
        output.write_bytes(torn)  # killed during the first write of a new file
        assert read_records(output, repair=True) == [] and output.read_bytes() == b""


def test_a_resume_with_paths_spelled_differently_adds_no_record(images, tmp_path, monkeypatch):
    output = tmp_path / "out.jsonl"
    monkeypatch.chdir(images.parent)
    first = predict_to_jsonl(None, images.name, output, num_workers=0, progress=False)
    assert first.predicted == 3 and not read_records(output)[0]["path"].startswith("/")
    again = predict_to_jsonl(None, str(images.resolve()), output, num_workers=0, progress=False)
    assert (again.already_done, again.predicted, again.records) == (3, 0, 3)
    assert len(output.read_text().splitlines()) == 3
