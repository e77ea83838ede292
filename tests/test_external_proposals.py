"""Proposals from outside the model (Fast R-CNN): the RoI head on given boxes, at inference and in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor
from faster_rcnn_hub.data.synthetic import SyntheticSpec, generate_image
from faster_rcnn_hub.default_model import default_model_dir
from faster_rcnn_hub.errors import FasterRCNNHubError, InvalidAnnotationError, InvalidConfigError
from faster_rcnn_hub.proposals import ProposalSet
from faster_rcnn_hub.training.data import CocoDetectionDataset, DetectionDataCollator
from faster_rcnn_hub.training.trainer import DetectionTrainer, TrainingOptions
from training_helpers import tiny_config, tiny_dataset, tiny_processor

DETECTION_KEYS = ("pred_boxes", "scores", "labels", "num_detections")


@pytest.fixture(scope="module")
def default_model():
    model = FasterRCNNForObjectDetection.from_pretrained(default_model_dir()).eval()
    return model, FasterRCNNImageProcessor.from_pretrained(default_model_dir())


def _synthetic_images(count: int, size: int = 256) -> list[np.ndarray]:
    spec = SyntheticSpec(image_size=(size, size))
    return [np.asarray(generate_image(7, index, spec).image) for index in range(count)]


def _rpn_proposals(outputs) -> list[torch.Tensor]:
    return [outputs.proposals[index, :count] for index, count in enumerate(outputs.num_proposals.tolist())]


def test_given_the_rpn_own_proposals_detections_equal_the_normal_forward(default_model):
    model, processor = default_model
    # Two sizes: the batch runs in groups of equal padded size, each with its own images' proposals.
    images = [*_synthetic_images(2), np.ascontiguousarray(_synthetic_images(1)[0][:160, :200])]
    inputs = processor(images=images)
    with torch.no_grad():
        normal = model(**inputs)
        given = model(**inputs, proposals=_rpn_proposals(normal))
    assert int(normal.num_detections.min()) > 0
    for key in DETECTION_KEYS:
        assert torch.equal(normal[key], given[key]), key
    assert given.proposals is None and given.proposal_scores is None
    assert torch.equal(given.num_proposals, normal.num_proposals)


def test_proposals_in_original_pixels_go_through_the_processor(converted_model):
    # A model that resizes (tiny COCO model, 1333 x 800): boxes given in original pixels are scaled by the
    # processor to the network's input, as mmdetection's Resize moves proposals.
    model = FasterRCNNForObjectDetection.from_pretrained(converted_model("tiny_r50_fpn_coco")).eval()
    processor = FasterRCNNImageProcessor.from_pretrained(converted_model("tiny_r50_fpn_coco"))
    image = _synthetic_images(1, size=320)[0]
    inputs = processor(images=[image])
    with torch.no_grad():
        normal = model(**inputs)
    resized_height, resized_width = inputs["image_sizes"][0].tolist()
    scale = torch.tensor([resized_width / 320, resized_height / 320] * 2)
    in_original_pixels = (_rpn_proposals(normal)[0] / scale).numpy()
    with torch.no_grad():
        given = model(**processor(images=[image], proposals=[in_original_pixels]))
    count = int(normal.num_detections[0])
    assert count > 0 and int(given.num_detections[0]) == count
    torch.testing.assert_close(given.pred_boxes, normal.pred_boxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(given.scores, normal.scores, atol=1e-5, rtol=0)
    assert torch.equal(given.labels, normal.labels)


def test_a_fast_rcnn_model_refuses_to_run_without_proposals(default_model):
    model, processor = default_model
    config = model.config.to_dict() | {"proposal_source": "external"}
    fast_rcnn = FasterRCNNForObjectDetection(type(model.config).from_dict(config)).eval()
    with pytest.raises(InvalidConfigError, match="Fast R-CNN.*Pass proposals"):
        fast_rcnn(**processor(images=_synthetic_images(1)))
    with torch.no_grad():
        output = fast_rcnn(**processor(images=_synthetic_images(1)), proposals=[torch.tensor([[10.0, 10, 90, 90]])])
    assert int(output.num_proposals[0]) == 1


@pytest.mark.parametrize(
    "proposals, message",
    [
        ([torch.zeros(3, 4), torch.zeros(3, 4)], "2 entries for a batch of 1"),
        ([torch.zeros(3, 5)], r"shape \(n, 4\)"),
        ([torch.tensor([[0.0, 0, float("nan"), 4]])], "NaN"),
        ([torch.tensor([[10.0, 10, 5, 20]])], "x2 < x1"),
        ("boxes", "one \\(n, 4\\) box tensor per image"),
    ],
)
def test_bad_proposals_are_refused_with_a_clear_message(default_model, proposals, message):
    model, processor = default_model
    with pytest.raises(InvalidAnnotationError, match=message):
        model(**processor(images=_synthetic_images(1)), proposals=proposals)


def test_processor_flips_proposals_with_the_image_and_its_boxes():
    # A proposal equal to an object's box must stay equal to the label box through resize and flip.
    processor = FasterRCNNImageProcessor(size={"longest_edge": 200, "shortest_edge": 100})
    image = np.zeros((80, 120, 3), dtype=np.uint8)
    annotations = {"image_id": 1, "annotations": [{"bbox": [10, 20, 30, 40], "category_id": 0}]}
    proposals = np.array([[10, 20, 40, 60], [0, 0, 120, 80], [100, 50, 130, 90]], dtype=np.float32)
    for flip in (0.0, 1.0):
        batch = processor(images=[image], annotations=[annotations], proposals=[proposals], random_flip_probability=flip)
        assert batch["labels"][0]["flipped"] == bool(flip)
        assert torch.equal(batch["proposals"][0][0], batch["labels"][0]["boxes"][0])
        height, width = batch["image_sizes"][0].tolist()
        assert torch.equal(batch["proposals"][0][1], torch.tensor([0.0, 0, width, height]))
        # Clipped to the image, every box kept in order.
        assert batch["proposals"][0].shape == (3, 4) and float(batch["proposals"][0][:, 0::2].max()) <= width


def test_training_on_given_proposals_computes_the_second_stage_losses_only():
    torch.manual_seed(0)
    model = FasterRCNNForObjectDetection(tiny_config()).train()
    labels = [{"class_labels": torch.tensor([1]), "boxes": torch.tensor([[20.0, 20, 60, 70]])}]
    proposals = [torch.tensor([[18.0, 22, 61, 66], [0, 0, 40, 40], [50, 50, 90, 90]])]
    output = model(pixel_values=torch.randn(1, 3, 96, 96), labels=labels, proposals=proposals)
    assert set(output.loss_dict) == {"loss_cls", "loss_bbox"}
    output.loss.backward()
    assert all(parameter.grad is None for parameter in model.rpn.parameters())
    assert next(model.backbone.parameters()).grad is not None
    assert model.roi_heads.box_predictor.cls_score.weight.grad.abs().sum() > 0


def _proposals_for(dataset: CocoDetectionDataset) -> ProposalSet:
    # Each image's object boxes, jittered, and a fixed background box: enough for the RoI head to learn from.
    generator = np.random.default_rng(0)
    boxes = {}
    for index in range(len(dataset)):
        sample = dataset[index]
        objects = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in sample["annotations"]["annotations"])])
        boxes[sample["annotations"]["image_id"]] = np.concatenate(
            [objects + generator.normal(0, 2, objects.shape), [[0, 0, 30, 30]]]
        ).astype(np.float32)
    return ProposalSet(boxes=boxes, method="test")


def test_trainer_trains_a_fast_rcnn_on_its_data_set_proposals(tmp_path):
    folder = tiny_dataset(tmp_path / "data", num_images=4)
    plain = CocoDetectionDataset(folder / "annotations.json", folder / "images", skip_empty=True)
    proposal_set = _proposals_for(plain)
    proposal_set.save(tmp_path / "proposals.npz")
    with_proposals = CocoDetectionDataset(
        folder / "annotations.json", folder / "images", skip_empty=True, proposals=ProposalSet.load(tmp_path / "proposals.npz")
    )
    torch.manual_seed(0)
    model = FasterRCNNForObjectDetection(tiny_config(proposal_source="external"))
    rpn_before = {key: value.clone() for key, value in model.rpn.state_dict().items()}
    backbone_before = next(model.backbone.parameters()).detach().clone()
    options = TrainingOptions(output_dir=str(tmp_path / "run"), max_steps=3, batch_size=2, optimizer="adamw",
                              learning_rate=1e-3, warmup_steps=0, progress_bar=False, log_every=1)  # fmt: skip
    with pytest.raises(FasterRCNNHubError, match="needs proposals"):
        DetectionTrainer(model, tiny_processor(), plain, options)
    state = DetectionTrainer(model, tiny_processor(), with_proposals, options).train()
    assert [record["stage"] for record in state.log] == ["fast-rcnn"] * 3
    assert all(set(record) >= {"loss_cls", "loss_bbox"} and "loss_rpn_cls" not in record for record in state.log)
    assert all(torch.equal(value, rpn_before[key]) for key, value in model.rpn.state_dict().items())
    assert not torch.equal(next(model.backbone.parameters()), backbone_before)
    # The collator carries each image's proposals into the batch, in the input frame.
    batch = DetectionDataCollator(tiny_processor(), with_proposals.category_id_to_label)([with_proposals[0]])
    assert batch["proposals"][0].shape == (len(proposal_set.for_image(with_proposals.images[0]["id"])), 4)


def test_a_data_set_with_proposals_is_refused_for_a_model_with_its_own_rpn(tmp_path):
    folder = tiny_dataset(tmp_path / "data", num_images=2)
    plain = CocoDetectionDataset(folder / "annotations.json", folder / "images", skip_empty=True)
    dataset = CocoDetectionDataset(folder / "annotations.json", folder / "images", skip_empty=True,
                                   proposals=_proposals_for(plain))  # fmt: skip
    options = TrainingOptions(output_dir=str(tmp_path / "run"), max_steps=1, progress_bar=False)
    with pytest.raises(FasterRCNNHubError, match="proposal_source='external'"):
        DetectionTrainer(FasterRCNNForObjectDetection(tiny_config()), tiny_processor(), dataset, options)


def test_selective_search_train_and_evaluate_commands_make_a_fast_rcnn(tmp_path, capsys):
    from faster_rcnn_hub.cli import main

    data = tiny_dataset(tmp_path / "data", num_images=4)
    common = ["--annotations", str(data / "annotations.json"), "--images", str(data / "images")]
    proposals = tmp_path / "proposals.npz"
    assert main(["selective-search", *common, "--output", str(proposals), "--max-proposals", "300", "--no-progress"]) == 0
    kept = ProposalSet.load(proposals)
    assert kept.method == "selective-search-fast" and len(kept.boxes) == 4
    assert all(0 < len(boxes) <= 300 for boxes in kept.boxes.values())
    assert main(["selective-search", *common, "--output", str(proposals)]) == 2
    assert "already exists" in capsys.readouterr().err

    config_path = tmp_path / "config.json"
    config_path.write_text(tiny_config().to_json_string())
    output = tmp_path / "run"
    assert main(["train", *common, "--config", str(config_path), "--scale", "96,96", "--max-steps", "2", "--batch-size",
                 "2", "--warmup-steps", "1", "--output-dir", str(output), "--no-progress", "--proposals",
                 str(proposals)]) == 0  # fmt: skip
    assert "Training a Fast R-CNN" in capsys.readouterr().out
    assert FasterRCNNForObjectDetection.from_pretrained(output).config.proposal_source == "external"

    assert main(["evaluate", "--model", str(output), *common]) == 2
    assert "give the images' proposals with --proposals" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(output), *common, "--proposals", str(proposals)]) == 0
    assert "COCO box AP: AP" in capsys.readouterr().out
