"""README's Python example, as written (read from README.md at test time), gives boxes in the upright frame of an
EXIF-rotated JPEG; post-processing warns about a `target_sizes` taken before the rotation."""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor, load_image
from faster_rcnn_hub.default_model import default_model_dir, example_image_path

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE_MODEL = "r50-fpn-coco"  # the model folder README's snippet names
EXAMPLE_IMAGE = "street.jpg"


def readme_snippet() -> str:
    """The first Python block of README's "Using a converted model" section."""
    section = README.read_text(encoding="utf-8").split("## Using a converted model", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    if match is None:
        raise AssertionError("README's 'Using a converted model' section has no Python example")
    return match.group(1)


@pytest.fixture(scope="module")
def rotated_jpeg(tmp_path_factory) -> Path:
    """A landscape picture of shapes (192 x 256) stored as a portrait JPEG with EXIF "rotate 90 to display"."""
    upright = Image.open(example_image_path()).convert("RGB").crop((0, 0, 256, 192))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path_factory.mktemp("readme") / "rotated.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    return path


def upright_detections(path: Path, threshold: float) -> list[tuple[str, float, list[float]]]:
    model = FasterRCNNForObjectDetection.from_pretrained(default_model_dir()).eval()
    processor = FasterRCNNImageProcessor.from_pretrained(default_model_dir())
    upright = load_image(path)
    assert upright.size == (256, 192)
    with torch.no_grad():
        outputs = model(**processor(images=[upright]))
    result = processor.post_process_object_detection(outputs, threshold=threshold)[0]
    return [
        (model.config.id2label[int(label)], float(score), box.tolist())
        for score, label, box in zip(result["scores"], result["labels"], result["boxes"])
    ]


def test_readme_python_example_gives_upright_boxes_on_an_exif_rotated_jpeg(rotated_jpeg):
    snippet = readme_snippet()
    assert f'"{EXAMPLE_MODEL}"' in snippet and f'"{EXAMPLE_IMAGE}"' in snippet
    runnable = snippet.replace(f'"{EXAMPLE_MODEL}"', repr(str(default_model_dir()))).replace(
        f'"{EXAMPLE_IMAGE}"', repr(str(rotated_jpeg))
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(runnable, "README.md", "exec"), {})  # noqa: S102 - the project's own README
    lines = printed.getvalue().splitlines()
    expected = upright_detections(rotated_jpeg, threshold=0.5)
    assert len(expected) >= 2 and len(lines) == len(expected), printed.getvalue()
    for line, (label, score, box) in zip(lines, expected):
        found_label, found_score, found_box = line.split(" ", 2)
        assert found_label == label and abs(float(found_score) - score) < 1e-6
        assert torch.allclose(torch.tensor(json.loads(found_box)), torch.tensor(box), atol=1e-3), (line, box)


def test_target_sizes_swapped_by_the_exif_rotation_are_warned_about(rotated_jpeg):
    model = FasterRCNNForObjectDetection.from_pretrained(default_model_dir()).eval()
    processor = FasterRCNNImageProcessor.from_pretrained(default_model_dir())
    image = Image.open(rotated_jpeg)
    with torch.no_grad():
        outputs = model(**processor(images=[image]))
    assert outputs.original_sizes.tolist() == [[192, 256]] and (image.height, image.width) == (256, 192)
    with pytest.warns(UserWarning, match=r"target_sizes\[0\] is \(256, 192\).*swapped"):
        processor.post_process_object_detection(outputs, target_sizes=[(image.height, image.width)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = processor.post_process_object_detection(outputs)[0]
        explicit = processor.post_process_object_detection(outputs, target_sizes=[(192, 256)])[0]
    assert torch.equal(default["boxes"], explicit["boxes"])
