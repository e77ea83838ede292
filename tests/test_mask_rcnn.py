"""Mask R-CNN: the mask head's output and the pasted masks equal mmdetection's, on the fused and unfused paths and
in batches; the processor's instance segmentation and `pipeline("image-segmentation")` give those masks; the mask
head config is validated and converted strictly.

The rules are the fixtures' (shared/fixtures/README-mask-cascade.md): pasting mmdetection's own mask logits at its
boxes gives its masks exactly; on matched detections the logits are within 1e-3 plus 3 times the largest box
difference (in resized-image pixels); masks differ only at pixels where mmdetection's pasted probability is within
0.05 of 0.5, and at most at 2% of the summed unions. The detections themselves (proposals, boxes, scores, the
object-detection pipeline) are checked with every other case in test_parity.py.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from conftest import (
    IMAGES,
    MMDET,
    assert_manifest_keys_fill_the_model,
    case_images,
    load_manifest,
    reference,
    resized_image_path,
    write_manifest_config,
)
from isolated_python import run_isolated
from parity import assert_matches, compare_detections, match_detections
from PIL import Image
from transformers import pipeline

from faster_rcnn_hub import FasterRCNNConfig, FasterRCNNForObjectDetection
from faster_rcnn_hub.conversion import load_config_file, settings_from_mmdet_config
from faster_rcnn_hub.conversion.state_dict import convert_state_dict
from faster_rcnn_hub.errors import InvalidAnnotationError, InvalidConfigError, UnsupportedArchitectureError
from faster_rcnn_hub.models.faster_rcnn.mask_encoding import encode_rle
from faster_rcnn_hub.models.faster_rcnn.mask_pasting import paste_masks

CASE = "tiny_mask_r50_fpn_coco"
HEAD_TOLERANCE = 1e-3
HEAD_TOLERANCE_PER_PIXEL_OF_BOX = 3.0
UNCERTAIN_PROBABILITY = 0.05
MAX_DIFFERING_FRACTION = 0.02


FULL_SIZE_CASE = "mask_r50_fpn_1x_coco"


def _reference_masks(image: str) -> np.ndarray:
    return np.load(MMDET / CASE / f"{image}.masks.npz")["masks"].astype(bool)


def _reference_logits(image: str, case: str = CASE) -> torch.Tensor:
    """mmdetection's mask logits of its detections, in its order (the full-size case keeps the first 50 only)."""
    return torch.from_numpy(np.load(MMDET / case / f"{image}.mask_logits.npz")["mask_logits"])


@pytest.mark.parametrize("image", case_images(CASE))
def test_pasting_mmdetection_logits_at_its_boxes_gives_its_masks_exactly(image):
    expected = reference(CASE, image)
    boxes = torch.tensor(expected["boxes"], dtype=torch.float32)
    pasted = paste_masks(_reference_logits(image).sigmoid(), boxes, tuple(expected["ori_shape"]))
    assert pasted.dtype == torch.bool and pasted.shape == (len(boxes), *expected["ori_shape"])
    assert int((pasted.numpy() != _reference_masks(image)).sum()) == 0


def test_pasting_keeps_probabilities_without_a_threshold_and_handles_degenerate_boxes():
    probabilities = torch.full((2, 28, 28), 0.75)
    boxes = torch.tensor([[2.0, 3.0, 12.0, 9.0], [5.0, 5.0, 5.0, 5.0]])  # the second box has no area
    soft = paste_masks(probabilities, boxes, (16, 20), threshold=None)
    assert soft.dtype == torch.float32 and soft.shape == (2, 16, 20)
    # Inside the first box every sample is 0.75; outside its window nothing is pasted.
    assert torch.allclose(soft[0, 4:8, 3:11], torch.tensor(0.75)) and soft[0, :, 14:].abs().max() == 0
    assert bool(torch.isfinite(soft).all())
    binary = paste_masks(probabilities, boxes, (16, 20), threshold=0.8)
    assert not bool(binary.any())


_outputs_of_files: dict = {}


def _outputs_from_file(loaded_model, image: str):
    """The model's outputs for the original file through the processor (the documented API; its input is bit for
    bit mmdetection's resized image, test_parity.py checks), on the default fused path, computed once per image."""
    if image not in _outputs_of_files:
        model, processor = loaded_model(CASE)
        with torch.no_grad():
            _outputs_of_files[image] = model(**processor(images=[Image.open(IMAGES / f"{image}.png")]))
    return _outputs_of_files[image]


def _run(model, processor, image: str, fused: bool):
    expected = reference(CASE, image)
    inputs = processor(images=[Image.open(resized_image_path(CASE, image))])
    inputs["original_sizes"] = torch.tensor([expected["ori_shape"]])
    model.enable_fused_inference(fused)
    try:
        with torch.no_grad():
            return model(**inputs)
    finally:
        model.enable_fused_inference(True)


def assert_masks_match_mmdetection(
    image: str, boxes, labels, mask_logits, masks, what: str, case: str = CASE
) -> None:
    """The fixtures' head and end-to-end mask rules on the detections matched to mmdetection's (those whose
    logits the fixture holds). mmdetection's masks are its logits pasted at its boxes, which is exact (see
    test_pasting_mmdetection_logits_at_its_boxes_gives_its_masks_exactly)."""
    expected = reference(case, image)
    reference_logits = _reference_logits(image, case)
    pairs = match_detections(expected["boxes"], expected["labels"], boxes, labels)
    assert len(pairs) >= 0.99 * len(expected["labels"]), f"{what}: only {len(pairs)} detections matched"
    pairs = [(i, j) for i, j in pairs if i < len(reference_logits)]
    reference_index = [i for i, _ in pairs]
    index = [j for _, j in pairs]
    scale = max(expected["scale_factor"])
    box_difference = (torch.as_tensor(boxes)[index].double() - torch.tensor(expected["boxes"])[reference_index]).abs()
    resized_box_difference = box_difference.max().item() * scale
    logit_difference = (mask_logits[index].double() - reference_logits[reference_index].double()).abs().max()
    bound = HEAD_TOLERANCE + HEAD_TOLERANCE_PER_PIXEL_OF_BOX * resized_box_difference
    assert logit_difference.item() <= bound, (
        f"{what}: mask logits differ by {logit_difference.item():.3g}, more than {bound:.3g}"
    )
    reference_boxes = torch.tensor(expected["boxes"], dtype=torch.float32)[reference_index]
    reference_probability = paste_masks(
        reference_logits[reference_index].sigmoid(), reference_boxes, tuple(expected["ori_shape"]), None
    ).numpy()
    reference_masks = reference_probability >= expected["mask_thr_binary"]
    found = np.asarray(masks)[index]
    differing = found != reference_masks
    uncertain = np.abs(reference_probability - 0.5) <= UNCERTAIN_PROBABILITY
    assert not bool((differing & ~uncertain).any()), (
        f"{what}: {int((differing & ~uncertain).sum())} mask pixels differ where mmdetection is sure"
    )
    union = int((found | reference_masks).sum())
    assert differing.sum() <= MAX_DIFFERING_FRACTION * union, f"{what}: {int(differing.sum())} of {union} px differ"


# Every image on the default, fused path; the unfused path (every layer as mmdetection runs it) on the image with the
# most mask pixels.
PATHS = [(image, True) for image in case_images(CASE)] + [("astronaut", False)]


PATH_IDS = [f"{image}-{'fused' if fused else 'unfused'}" for image, fused in PATHS]


@pytest.mark.parametrize("image,fused", PATHS, ids=PATH_IDS)
def test_mask_head_and_pasted_masks_match_mmdetection(loaded_model, image, fused):
    model, processor = loaded_model(CASE)
    outputs = _outputs_from_file(loaded_model, image) if fused else _run(model, processor, image, fused)
    count = int(outputs.num_detections[0])
    expected = reference(CASE, image)
    comparison = compare_detections(
        expected["boxes"], expected["scores"], expected["labels"],
        outputs.pred_boxes[0, :count], outputs.scores[0, :count].tolist(), outputs.labels[0, :count].tolist(),
    )  # fmt: skip
    assert_matches(comparison, f"{CASE}/{image} detections (fused={fused})")
    assert outputs.pred_masks.shape == (1, model.config.rcnn_max_per_img, 28, 28)
    assert torch.equal(outputs.pred_masks[0, :count], outputs.pred_mask_logits[0, :count].sigmoid())
    assert not bool(outputs.pred_masks[0, count:].any()), "padding rows must hold no mask"
    masks = paste_masks(outputs.pred_masks[0, :count], outputs.pred_boxes[0, :count], tuple(expected["ori_shape"]))
    assert_masks_match_mmdetection(
        image,
        outputs.pred_boxes[0, :count],
        outputs.labels[0, :count].tolist(),
        outputs.pred_mask_logits[0, :count],
        masks.numpy(),
        f"{image} fused={fused}",
    )


@pytest.mark.slow
def test_full_size_mask_rcnn_masks_match_mmdetection(loaded_model):
    """mmdetection's `mask_r50_fpn_1x_coco` (rebuilt from the manifest and seed 23): the mask head's logits and
    the pasted masks of its first 50 detections (its detections are checked in test_parity.py)."""
    model, processor = loaded_model(FULL_SIZE_CASE)
    expected = reference(FULL_SIZE_CASE, "astronaut")
    inputs = processor(images=[Image.open(resized_image_path(FULL_SIZE_CASE, "astronaut"))])
    inputs["original_sizes"] = torch.tensor([expected["ori_shape"]])
    with torch.no_grad():
        outputs = model(**inputs)
    count = int(outputs.num_detections[0])
    masks = paste_masks(outputs.pred_masks[0, :count], outputs.pred_boxes[0, :count], tuple(expected["ori_shape"]))
    assert_masks_match_mmdetection(
        "astronaut",
        outputs.pred_boxes[0, :count],
        outputs.labels[0, :count].tolist(),
        outputs.pred_mask_logits[0, :count],
        masks.numpy(),
        f"{FULL_SIZE_CASE} astronaut",
        case=FULL_SIZE_CASE,
    )


def _instances(loaded_model, image: str, **kwargs):
    _, processor = loaded_model(CASE)
    return processor.post_process_instance_segmentation(_outputs_from_file(loaded_model, image), **kwargs)[0]


# Inputs a quarter of the test scale's pixels, to keep the batch checks fast.
SMALL_SIZE = {"longest_edge": 666, "shortest_edge": 400}


def test_a_batch_of_differently_sized_images_gives_each_its_own_masks(loaded_model):
    model, processor = loaded_model(CASE)
    processor = processor.with_settings(size=SMALL_SIZE)
    images = [Image.open(IMAGES / f"{name}.png") for name in ("chelsea", "camera")]
    with torch.no_grad():
        batch = model(**processor(images=images))
        alone = [model(**processor(images=[image])) for image in images]
    for index, single in enumerate(alone):
        count = int(single.num_detections[0])
        assert int(batch.num_detections[index]) == count
        torch.testing.assert_close(batch.pred_masks[index, :count], single.pred_masks[0, :count], atol=1e-5, rtol=0)


@pytest.mark.parametrize("image", case_images(CASE))
def test_post_process_instance_segmentation_gives_mmdetection_masks_from_the_original_file(loaded_model, image):
    result = _instances(loaded_model, image, threshold=0.0, return_binary_maps=True)
    expected = reference(CASE, image)
    masks = result["segmentation"]
    info = result["segments_info"]
    assert masks.shape == (len(expected["scores"]), *expected["ori_shape"]) and masks.dtype == torch.bool
    assert [item["id"] for item in info] == list(range(len(info)))
    comparison = compare_detections(
        expected["boxes"], expected["scores"], expected["labels"],
        [item["box"] for item in info], [item["score"] for item in info], [item["label_id"] for item in info],
    )  # fmt: skip
    assert_matches(comparison, f"{image} instance segmentation")
    assert_masks_match_mmdetection(
        image,
        [item["box"] for item in info],
        [item["label_id"] for item in info],
        _outputs_from_file(loaded_model, image).pred_mask_logits[0, : len(info)],
        masks.numpy(),
        f"{image} post-processed",
    )


def test_instance_id_map_shows_the_best_scored_instance_and_rle_is_pycocotools(loaded_model):
    binary = _instances(loaded_model, "camera", threshold=0.3, return_binary_maps=True)
    id_map = _instances(loaded_model, "camera", threshold=0.3)
    coco = _instances(loaded_model, "camera", threshold=0.3, return_coco_annotation=True)
    masks = binary["segmentation"]
    assert 0 < masks.size(0) < 100 and id_map["segments_info"] == binary["segments_info"]
    expected = torch.full(masks.shape[1:], -1, dtype=torch.long)
    for number in range(masks.size(0)):
        expected[masks[number] & (expected < 0)] = number  # by decreasing score: the first instance to claim wins
    assert torch.equal(id_map["segmentation"], expected)
    assert coco["segmentation"] == [encode_rle(mask) for mask in masks]


@pytest.mark.parametrize("image", case_images(CASE))
def test_rle_encoding_equals_the_pycocotools_strings_of_the_fixtures(image):
    expected = reference(CASE, image)["mask_rle"]
    assert [encode_rle(mask) for mask in _reference_masks(image)] == expected


def test_image_segmentation_pipeline_reports_the_instances(converted_model, loaded_model):
    segmenter = pipeline("image-segmentation", model=str(converted_model(CASE)))
    found = segmenter(str(IMAGES / "camera.png"), subtask="instance", threshold=0.2)
    id_map = _instances(loaded_model, "camera", threshold=0.2)
    id2label = segmenter.model.config.id2label
    assert [item["label"] for item in found] == [id2label[item["label_id"]] for item in id_map["segments_info"]]
    assert [item["score"] for item in found] == [item["score"] for item in id_map["segments_info"]]
    assert len(found) > 0
    for number, item in enumerate(found):
        assert np.array_equal(np.asarray(item["mask"]) > 0, (id_map["segmentation"] == number).numpy())


def test_post_processing_outputs_without_masks_says_the_model_has_no_mask_head(loaded_model):
    _, processor = loaded_model(CASE)
    box_outputs = {key: value for key, value in _outputs_from_file(loaded_model, "camera").items() if "mask" not in key}
    with pytest.raises(InvalidConfigError, match="no mask head"):
        processor.post_process_instance_segmentation(box_outputs)


def test_forward_with_labels_on_a_mask_model_needs_the_objects_masks(loaded_model):
    model, processor = loaded_model(CASE)
    inputs = processor(images=[Image.new("RGB", (64, 48))])
    labels = [{"class_labels": torch.tensor([0]), "boxes": torch.tensor([[1.0, 1.0, 20.0, 20.0]])}]
    with pytest.raises(InvalidAnnotationError, match=r"labels\[0\] has no 'masks'.*with_masks=True"):
        model(**inputs, labels=labels)
    labels[0]["masks"] = torch.zeros(2, *inputs["pixel_values"].shape[-2:], dtype=torch.uint8)
    with pytest.raises(InvalidAnnotationError, match=r"must have shape \(1, height, width\), one mask per box"):
        model(**inputs, labels=labels)


def test_mask_head_config_round_trips_with_defaults_filled_in(tmp_path):
    config = FasterRCNNConfig(mask_head={"conv_channels": 64}, num_classes=3)
    config.save_pretrained(tmp_path)
    loaded = FasterRCNNConfig.from_pretrained(tmp_path)
    assert loaded.mask_head == {
        "roi_output_size": 14, "roi_sampling_ratio": 0, "roi_aligned": True, "num_convs": 4, "conv_channels": 64,
        "upsample_ratio": 2, "class_agnostic": False, "mask_threshold": 0.5,
    }  # fmt: skip
    assert loaded.mask_size == 28
    with torch.device("meta"):
        model = FasterRCNNForObjectDetection(loaded)
    assert model.roi_heads.mask_head.conv_logits.out_channels == 3
    assert len(model.roi_heads.mask_head.convs) == 4


@pytest.mark.parametrize(
    "mask_head,message",
    [
        ([14], r"mask_head must be a mapping or null"),
        ({"num_conv": 4}, r"mask_head has unknown keys \['num_conv'\]"),
        ({"roi_output_size": 0}, r"mask_head.roi_output_size must be an integer >= 1"),
        ({"conv_channels": "256"}, r"mask_head.conv_channels must be an integer >= 1"),
        ({"class_agnostic": 1}, r"mask_head.class_agnostic must be true or false"),
        ({"mask_threshold": 1.5}, r"mask_head.mask_threshold must be in \[0, 1\]"),
    ],
    ids=["not-a-mapping", "unknown-key", "zero-size", "string-channels", "int-flag", "threshold-above-one"],
)
def test_bad_mask_head_configs_are_refused_naming_the_field(mask_head, message):
    with pytest.raises(InvalidConfigError, match=message):
        FasterRCNNConfig(mask_head=mask_head)


def test_zoo_mask_rcnn_config_converts_every_key(tmp_path):
    """mmdetection's full-size Mask R-CNN config: its mask head, and a place of the right shape for each of its
    checkpoint's keys (the model is built on the meta device: no weights are made)."""
    manifest = load_manifest("mask_r50_fpn_1x_coco")
    settings = settings_from_mmdet_config(load_config_file(write_manifest_config(manifest, tmp_path / "mask.py")))
    assert settings.model["mask_head"] == {
        "roi_output_size": 14, "roi_sampling_ratio": 0, "roi_aligned": True, "num_convs": 4, "conv_channels": 256,
        "upsample_ratio": 2, "class_agnostic": False, "mask_threshold": 0.5,
    }  # fmt: skip
    config = FasterRCNNConfig(num_classes=settings.num_classes, **settings.model)
    assert_manifest_keys_fill_the_model(manifest, config)


@pytest.mark.parametrize(
    "name,change,message",
    [
        (
            "cascade_mask_r50_fpn_1x_coco",
            lambda cfg: cfg["roi_head"].update(
                mask_head=[cfg["roi_head"]["mask_head"], cfg["roi_head"]["mask_head"], {"type": "FCNMaskHead"}]
            ),
            r"`model.roi_head.mask_head` differs between the cascade stages",
        ),
        (
            "mask_r50_fpn_1x_coco",
            lambda cfg: cfg["roi_head"]["mask_head"].update(upsample_cfg={"type": "bilinear", "scale_factor": 2}),
            r"mask_head.upsample_cfg.type",
        ),
        (
            "mask_r50_fpn_1x_coco",
            lambda cfg: cfg["roi_head"]["mask_head"].update(norm_cfg={"type": "GN", "num_groups": 32}),
            r"mask_head.norm_cfg",
        ),
        (
            "mask_r50_fpn_1x_coco",
            lambda cfg: cfg["roi_head"]["mask_roi_extractor"].update(featmap_strides=[8, 16, 32, 64]),
            r"mask_roi_extractor` pools from other levels",
        ),
        ("mask_r50_fpn_1x_coco", lambda cfg: cfg["test_cfg"]["rcnn"].update(mask_thr_binary=-1), r"mask_thr_binary"),
    ],
    ids=["cascade-stages-differ", "bilinear-upsample", "group-norm", "other-levels", "soft-masks"],
)
def test_unsupported_mask_configs_are_refused_naming_the_field(name, change, message, tmp_path):
    manifest = copy.deepcopy(load_manifest(name))
    change(manifest["model_cfg"])
    with pytest.raises(UnsupportedArchitectureError, match=message):
        settings_from_mmdet_config(load_config_file(write_manifest_config(manifest, tmp_path / f"{name}.py")))


def test_converted_folder_carries_the_mask_code(converted_model):
    folder = converted_model(CASE)
    assert {"mask_head.py", "mask_pasting.py", "mask_encoding.py"} <= {path.name for path in folder.iterdir()}
    card = (folder / "README.md").read_text()
    assert "# Mask R-CNN ResNet-50 FPN" in card
    mask_head = "RoIAlign 14x14, 4 conv 3x3 x 32, deconvolution x2, 28x28 masks per class, pasted and binarised at 0.5"
    assert mask_head in card
    saved = json.loads((folder / "config.json").read_text())
    assert saved["mask_head"]["conv_channels"] == 32
    assert saved["auto_map"]["AutoModelForImageSegmentation"] == "modeling_faster_rcnn.FasterRCNNForObjectDetection"


REMOTE_SEGMENTATION_DRIVER = """
import json, sys
try:
    import faster_rcnn_hub
except ModuleNotFoundError:
    pass
else:
    sys.exit("faster_rcnn_hub is importable: the test would not show that remote code suffices")
import numpy as np
from transformers import pipeline
segmenter = pipeline("image-segmentation", model=sys.argv[1], trust_remote_code=True)
found = segmenter(sys.argv[2], subtask="instance", threshold=float(sys.argv[3]))
print(json.dumps([{"label": item["label"], "score": item["score"], "pixels": int((np.asarray(item["mask"]) > 0).sum())}
                  for item in found]))
"""


def test_converted_folder_segments_as_remote_code(converted_model, loaded_model, tmp_path):
    """Without this package, `pipeline("image-segmentation")` loads the folder's own code (through the auto_map
    entries a mask model's config.json gains) and reports the instances this package does."""
    folder = converted_model(CASE)
    driver = tmp_path / "driver.py"
    driver.write_text(REMOTE_SEGMENTATION_DRIVER)
    done = run_isolated(driver, str(folder), str(IMAGES / "camera.png"), "0.2", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])
    local = _instances(loaded_model, "camera", threshold=0.2)
    id2label = loaded_model(CASE)[0].config.id2label
    assert [(item["label"], item["score"]) for item in remote] == [
        (id2label[item["label_id"]], item["score"]) for item in local["segments_info"]
    ]
    assert [item["pixels"] for item in remote] == [
        int((local["segmentation"] == number).sum()) for number in range(len(remote))
    ]


CASCADE_CASE = "tiny_cascade_r50_fpn_coco"


def test_zoo_cascade_mask_rcnn_config_converts_every_key(tmp_path):
    """mmdetection's Cascade Mask R-CNN: its mask head, and a place of the right shape for each of its checkpoint's
    400 keys, among them three mask heads, one per stage."""
    manifest = load_manifest("cascade_mask_r50_fpn_1x_coco")
    settings = settings_from_mmdet_config(load_config_file(write_manifest_config(manifest, tmp_path / "cascade.py")))
    assert settings.model["mask_head"]["conv_channels"] == 256 and len(settings.model["cascade_stages"]) == 3
    config = FasterRCNNConfig(num_classes=settings.num_classes, **settings.model)
    shapes = assert_manifest_keys_fill_the_model(manifest, config)
    assert sum(".mask_head." in key for key in shapes) == 3 * 12
    # The converter's strict renaming takes every key onto the model, shapes checked (meta tensors: no data).
    with torch.device("meta"):
        source = {key: torch.empty(shape) for key, shape in manifest["keys"]}
        target = FasterRCNNForObjectDetection(config).state_dict()
    assert set(convert_state_dict(source, target)) == set(target)


def test_cascade_mask_rcnn_averages_the_stages_masks_at_the_last_stage_boxes(loaded_model):
    """mmdetection's `CascadeRoIHead.predict_mask`: every stage's mask head runs on the final boxes (the last
    stage's, before rescaling), and a detection's mask is the mean of the stages' sigmoids of its class. The tiny
    Cascade R-CNN with mask heads added (seeded weights), on a small input."""
    cascade, processor = loaded_model(CASCADE_CASE)
    config = FasterRCNNConfig(**{**cascade.config.to_dict(), "mask_head": {"conv_channels": 16}})
    torch.manual_seed(0)
    model = FasterRCNNForObjectDetection(config).eval()
    missing, unexpected = model.load_state_dict(cascade.state_dict(), strict=False)
    assert not unexpected and all(".mask_head." in key for key in missing)
    inputs = processor.with_settings(size=SMALL_SIZE)(images=[Image.open(IMAGES / "camera.png")])
    with torch.no_grad():
        outputs = model(**inputs)
        count = int(outputs.num_detections[0])
        assert count > 10 and outputs.pred_mask_logits is None
        # Rebuild the masks by hand from the final boxes in resized pixels (mmdetection's mask RoIs).
        height, width = inputs["padded_sizes"][0].tolist()
        pyramid = model.fpn(model.backbone(inputs["pixel_values"][..., :height, :width]))
        (resized_height, resized_width), (original_height, original_width) = (
            inputs["image_sizes"][0].tolist(),
            inputs["original_sizes"][0].tolist(),
        )
        scale = torch.tensor([resized_width / original_width, resized_height / original_height] * 2)
        resized_boxes = outputs.pred_boxes[0, :count] * scale
        rois = torch.cat([resized_boxes.new_zeros(count, 1), resized_boxes], dim=1)
        pooled = model.roi_heads.mask_roi_align(pyramid, rois)
        labels = outputs.labels[0, :count]
        per_stage = [stage.mask_head(pooled).sigmoid()[torch.arange(count), labels] for stage in model.roi_heads.stages]
    averaged = sum(per_stage) / len(per_stage)
    torch.testing.assert_close(outputs.pred_masks[0, :count], averaged, atol=1e-4, rtol=0)
    assert (per_stage[-1] - averaged).abs().max() > 1e-2, "the stages' masks should differ for this test to bite"
