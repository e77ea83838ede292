"""The image processor: mmdetection's exact resize, normalization, padding; inputs of every kind."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import IMAGES, case_images, reference, resized_image_path
from faster_rcnn_hub import FasterRCNNImageProcessor, InvalidConfigError, InvalidImageError
from faster_rcnn_hub.models.faster_rcnn.image_processing_faster_rcnn import rescaled_size

SCALES = {"1333x800": {"longest_edge": 1333, "shortest_edge": 800}, "1000x600": {"longest_edge": 1000, "shortest_edge": 600}}
RESIZE_CASES = [("tiny_r50_fpn_coco", image) for image in case_images("tiny_r50_fpn_coco")] + [
    ("tiny_r50_caffe_fpn_voc", image) for image in case_images("tiny_r50_caffe_fpn_voc")
]


def _processor_for(case: str) -> FasterRCNNImageProcessor:
    scale = resized_image_path(case, "x").parent.name
    return FasterRCNNImageProcessor(size=SCALES[scale])


def test_opencv_is_the_contrib_build_the_package_pins():
    # The resize tests compare OpenCV's pixels with mmdetection's bit for bit: they must run against the OpenCV the
    # package depends on, the contrib build (selective search), and no second cv2 from plain opencv-python-headless.
    import importlib.metadata

    import cv2

    assert importlib.metadata.version("opencv-contrib-python-headless") == "5.0.0.93"
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("opencv-python-headless")
    assert hasattr(cv2, "ximgproc") and cv2.__version__ == "5.0.0"


@pytest.mark.parametrize("case,image", RESIZE_CASES)
def test_resize_reproduces_mmdetection_pixels_exactly(case, image):
    processor = _processor_for(case)
    original = np.asarray(Image.open(IMAGES / f"{image}.png").convert("RGB"))
    expected = np.asarray(Image.open(resized_image_path(case, image)).convert("RGB"))
    resized = processor.resize(original)
    assert resized.shape == expected.shape
    assert hashlib.sha256(resized.tobytes()).hexdigest() == hashlib.sha256(expected.tobytes()).hexdigest()


@pytest.mark.parametrize("case,image", RESIZE_CASES)
def test_sizes_and_normalized_input_statistics_match_mmdetection(case, image):
    info = reference(case, image)
    processor = _processor_for(case)
    if "caffe" in case:
        processor = FasterRCNNImageProcessor(
            size=processor.size, image_mean=[103.53, 116.28, 123.675], image_std=[1.0, 1.0, 1.0], channel_order="bgr"
        )
    inputs = processor(images=Image.open(IMAGES / f"{image}.png"))
    assert inputs["original_sizes"].tolist() == [info["ori_shape"]]
    assert inputs["image_sizes"].tolist() == [info["img_shape"]]
    assert inputs["padded_sizes"].tolist() == [info["pad_shape"]]
    # mmdetection's network input is the image padded to its padded size; the rest of the canvas is zeros.
    height, width = info["pad_shape"]
    network_input = inputs["pixel_values"][..., :height, :width].contiguous()  # mmdetection's layout, same sums
    assert network_input.mean().item() == pytest.approx(info["input_mean"], abs=1e-6)
    assert network_input.std().item() == pytest.approx(info["input_std"], rel=1e-6)
    assert inputs["pixel_values"][..., height:, :].abs().sum() == 0
    assert inputs["pixel_values"][..., width:].abs().sum() == 0


@pytest.mark.parametrize(
    "height,width,expected",
    [(512, 512, (800, 800)), (300, 451, (800, 1203)), (180, 1400, (171, 1333)), (40, 24, (1333, 800)), (1, 1, (800, 800))],
)
def test_rescaled_size_uses_mmcv_rounding(height, width, expected):
    assert rescaled_size(height, width, 1333, 800) == expected


def test_accepts_pil_numpy_and_tensors_identically():
    pil_image = Image.open(IMAGES / "chelsea.png").convert("RGB")
    array = np.array(pil_image)
    processor = FasterRCNNImageProcessor()
    reference_values = processor(images=pil_image)["pixel_values"]
    for variant in (array, torch.from_numpy(array).permute(2, 0, 1), torch.from_numpy(array.copy()), array.astype(np.float32) / 255):
        assert torch.equal(processor(images=variant)["pixel_values"], reference_values)


def test_grayscale_and_rgba_inputs_become_three_channels():
    processor = FasterRCNNImageProcessor()
    gray = Image.open(IMAGES / "camera.png")
    assert gray.mode == "L"
    rgb = gray.convert("RGB")
    assert torch.equal(processor(images=gray)["pixel_values"], processor(images=rgb)["pixel_values"])
    rgba = rgb.copy()
    rgba.putalpha(Image.new("L", rgba.size, 17))  # alpha is dropped, not composited, as OpenCV does
    assert torch.equal(processor(images=rgba)["pixel_values"], processor(images=rgb)["pixel_values"])
    gray_array = np.asarray(gray)
    assert torch.equal(processor(images=gray_array)["pixel_values"], processor(images=rgb)["pixel_values"])


def test_images_of_any_size_share_one_canvas_so_separate_calls_stack():
    processor = FasterRCNNImageProcessor()
    images = [Image.open(IMAGES / name) for name in ("astronaut.png", "chelsea.png", "wide_pattern.png")]
    batch = processor(images=images)
    # Any resized image fits 1333 x 1333, padded to 1344: one shape for every call (what pipeline batching needs).
    assert batch["pixel_values"].shape == (3, 3, 1344, 1344)
    assert batch["image_sizes"].tolist() == [[800, 800], [800, 1203], [171, 1333]]
    assert batch["padded_sizes"].tolist() == [[800, 800], [800, 1216], [192, 1344]]
    for index, image in enumerate(images):
        single = processor(images=image)["pixel_values"][0]
        assert torch.equal(batch["pixel_values"][index], single)
        height, width = batch["image_sizes"][index].tolist()
        assert batch["pixel_values"][index, :, height:, :].abs().sum() == 0
        assert batch["pixel_values"][index, :, :, width:].abs().sum() == 0


def test_bgr_channel_order_swaps_channels_before_normalizing():
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[..., 0] = 200  # red
    rgb = FasterRCNNImageProcessor(do_resize=False, image_mean=[0, 0, 0], image_std=[1, 1, 1])(images=image)
    bgr = FasterRCNNImageProcessor(do_resize=False, image_mean=[0, 0, 0], image_std=[1, 1, 1], channel_order="bgr")(images=image)
    assert rgb["pixel_values"][0, 0].max() == 200 and rgb["pixel_values"][0, 2].max() == 0
    assert bgr["pixel_values"][0, 2].max() == 200 and bgr["pixel_values"][0, 0].max() == 0


def test_torch_resize_backend_is_close_to_opencv():
    original = np.asarray(Image.open(IMAGES / "chelsea.png").convert("RGB"))
    exact = FasterRCNNImageProcessor().resize(original).astype(int)
    approximate = FasterRCNNImageProcessor(resize_backend="torch").resize(original).astype(int)
    assert approximate.shape == exact.shape
    assert np.abs(approximate - exact).max() <= 2


def test_save_and_load_round_trip(tmp_path):
    processor = FasterRCNNImageProcessor(size={"longest_edge": 1000, "shortest_edge": 600}, channel_order="bgr")
    processor.save_pretrained(tmp_path)
    loaded = FasterRCNNImageProcessor.from_pretrained(tmp_path)
    saved = loaded.to_dict()
    # Saved alone (no config.json beside it), the processor names its own remote class (test_saving.py).
    assert saved.pop("auto_map") == {"AutoImageProcessor": "image_processing_faster_rcnn.FasterRCNNImageProcessor"}
    assert saved == processor.to_dict()


@pytest.mark.parametrize(
    "bad_input,message",
    [
        ([], "No images"),
        (np.zeros((10, 10, 2), dtype=np.uint8), "channels"),
        (np.full((10, 10, 3), np.nan, dtype=np.float32), "NaN"),
        (np.zeros((0, 10, 3), dtype=np.uint8), "no pixels"),
        (np.zeros((2, 3, 4, 5, 6), dtype=np.uint8), "shape"),
        ("not an image", "Unsupported image type"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(bad_input, message):
    with pytest.raises(InvalidImageError, match=message):
        FasterRCNNImageProcessor()(images=bad_input)


@pytest.mark.parametrize(
    "settings,field",
    [
        ({"size": {"longest_edge": -5, "shortest_edge": 800}}, "longest_edge"),
        ({"image_std": [0, 1, 1]}, "image_std"),
        ({"channel_order": "rbg"}, "channel_order"),
        ({"resize_backend": "pil"}, "resize_backend"),
        ({"pad_size_divisor": 0}, "pad_size_divisor"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(settings, field):
    with pytest.raises(InvalidConfigError, match=field):
        FasterRCNNImageProcessor(**settings)


def test_post_processing_thresholds_and_rescales_to_target_sizes():
    processor = FasterRCNNImageProcessor()
    outputs = {
        "pred_boxes": torch.tensor([[[10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0], [0, 0, 0, 0]]]),
        "scores": torch.tensor([[0.9, 0.3, 0.0]]),
        "labels": torch.tensor([[4, 2, -1]]),
        "num_detections": torch.tensor([2]),
        "original_sizes": torch.tensor([[100, 200]]),
    }
    kept = processor.post_process_object_detection(outputs, threshold=0.5)[0]
    assert kept["labels"].tolist() == [4]
    assert kept["boxes"].tolist() == [[10.0, 20.0, 30.0, 40.0]]
    both = processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=[(50, 400)])[0]
    assert both["boxes"].tolist() == [[20.0, 10.0, 60.0, 20.0], [2.0, 1.0, 6.0, 2.0]]
    with pytest.raises(ValueError, match="target_sizes"):
        processor.post_process_object_detection(outputs, target_sizes=[(1, 1), (2, 2)])


# ------------------------------------------------------------------ transformers' conventions
def _two_images() -> list[Image.Image]:
    return [Image.open(IMAGES / "chelsea.png"), Image.open(IMAGES / "wide_pattern.png")]


@pytest.mark.parametrize(
    "overrides",
    [
        {"do_resize": False},
        {"size": {"longest_edge": 500, "shortest_edge": 300}},
        {"do_normalize": False},
        {"image_mean": [100.0, 110.0, 120.0], "image_std": [50.0, 60.0, 70.0]},
        {"channel_order": "bgr"},
        {"do_pad": False},
        {"pad_size_divisor": 64, "resize_backend": "torch"},
    ],
)
def test_a_call_may_override_settings_for_itself(overrides):
    processor = FasterRCNNImageProcessor(size={"longest_edge": 400, "shortest_edge": 240})
    before = processor.to_dict()
    found = processor(_two_images(), **overrides)
    expected = FasterRCNNImageProcessor(**{**before, **overrides})(_two_images())
    assert found.keys() == expected.keys()
    for key in expected:
        assert torch.equal(found[key], expected[key]), key
    assert processor.to_dict() == before  # the processor itself is unchanged
    assert not torch.equal(found["pixel_values"], processor(_two_images())["pixel_values"])


def test_overrides_are_checked_like_settings():
    processor = FasterRCNNImageProcessor()
    with pytest.raises(TypeError, match="resample.*settings a call may override"):
        processor(_two_images(), resample=2)
    with pytest.raises(InvalidConfigError, match="size"):
        processor(_two_images(), size={"height": 10})


def test_return_tensors_np_gives_the_same_values_as_numpy_arrays():
    processor = FasterRCNNImageProcessor(size={"longest_edge": 400, "shortest_edge": 240})
    annotations = [{"image_id": 1, "annotations": [{"bbox": [10, 20, 30, 40], "category_id": 3}]}] * 2
    as_torch = processor(_two_images(), annotations=annotations, return_tensors="pt")
    as_numpy = processor(_two_images(), annotations=annotations, return_tensors="np")
    for key in ("pixel_values", "image_sizes", "original_sizes", "padded_sizes"):
        assert isinstance(as_numpy[key], np.ndarray), key
        np.testing.assert_array_equal(as_numpy[key], as_torch[key].numpy())
    assert isinstance(as_numpy["labels"][0]["boxes"], np.ndarray)
    np.testing.assert_array_equal(as_numpy["labels"][1]["boxes"], as_torch["labels"][1]["boxes"].numpy())
    with pytest.raises(ValueError, match="return_tensors must be one of"):
        processor(_two_images(), return_tensors="tf")


def test_pad_batches_images_prepared_one_by_one_as_a_batch_call_does():
    processor = FasterRCNNImageProcessor(size={"longest_edge": 400, "shortest_edge": 240})
    images = _two_images()
    annotations = [{"image_id": index, "annotations": []} for index in range(2)]
    whole = processor(images, annotations=annotations)  # a training batch: padded to its largest image
    samples = [processor([image], annotations=[entry]) for image, entry in zip(images, annotations)]
    padded = processor.pad(
        [sample["pixel_values"][0] for sample in samples],
        image_sizes=[sample["image_sizes"][0] for sample in samples],
        return_pixel_mask=True,
    )
    for key in ("pixel_values", "image_sizes", "padded_sizes"):
        assert torch.equal(padded[key], whole[key]), key
    height, width = whole["image_sizes"][0].tolist()
    mask = padded["pixel_mask"][0]
    assert int(mask.sum()) == height * width and bool(mask[:height, :width].all())

    # Inference samples sit on the fixed canvas: pad() cuts them to their own padded size first.
    inference = processor.pad([processor([image])["pixel_values"] for image in images],
                              image_sizes=[processor([image])["image_sizes"][0] for image in images])  # fmt: skip
    assert torch.equal(inference["pixel_values"], whole["pixel_values"])
    fixed = processor.pad([sample["pixel_values"][0] for sample in samples], pad_size={"height": 480, "width": 480},
                          return_tensors="np")  # fmt: skip
    assert fixed["pixel_values"].shape == (2, 3, 480, 480) and "pixel_mask" not in fixed
    with pytest.raises(InvalidImageError, match="non-empty list"):
        processor.pad([])
    with pytest.raises(InvalidImageError, match="does not fit"):
        processor.pad([samples[0]["pixel_values"][0]], image_sizes=[(5000, 10)])
