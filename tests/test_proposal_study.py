"""`faster-rcnn-hub proposals-study --small`: the RPN against selective search, end to end on a tiny synthetic set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from faster_rcnn_hub.cli import main
from faster_rcnn_hub.evaluation.proposal_recall import proposal_recall
from faster_rcnn_hub.proposal_study.report import CARD_SECTION_START
from faster_rcnn_hub.proposals import ProposalSet
from faster_rcnn_hub.training.data import CocoDetectionDataset

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    card = folder / "card.md"
    card.write_text("# A model card\n\nIts own text.\n")
    threads_before = torch.get_num_threads()
    study_threads = 1 if threads_before != 1 else 2
    code = main(["proposals-study", "--small", "--output", str(folder / "out"), "--no-progress",
                 "--model-card", str(card), "--threads", str(study_threads)])  # fmt: skip
    assert code == 0
    return folder / "out", card, threads_before, torch.get_num_threads()


def test_the_study_gives_back_the_thread_count_it_set(small_study):
    # A later inference in the same process would otherwise differ in the last bit from a fresh process's.
    _, _, threads_before, threads_after = small_study
    assert threads_after == threads_before


def test_json_holds_recall_and_time_of_each_proposal_method(small_study):
    output = small_study[0]
    result = json.loads((output / "proposal_study.json").read_text())
    proposals = result["proposals"]
    assert proposals["images"] == 6 and proposals["objects"] > 6
    methods = proposals["methods"]
    assert set(methods) == {"rpn", "selective_search_fast", "selective_search_quality"}
    for name, method in methods.items():
        recall = np.array(method["recall"])
        assert method["budgets"] == [100, 300, 1000, 2000] and recall.shape == (4, len(method["iou_thresholds"]))
        assert ((recall >= 0) & (recall <= 1)).all(), name
        # More proposals never find fewer objects; a stricter IoU never finds more.
        assert (np.diff(recall, axis=0) >= 0).all() and (np.diff(recall, axis=1) <= 0).all(), name
        assert method["recall_at"]["300@0.7"] == pytest.approx(recall[1, method["iou_thresholds"].index(0.7)], abs=1e-4)
        assert 0 < method["mean_proposals"] <= 2000 and method["ms_per_image"] > 0
    assert 0 < methods["rpn"]["rpn_only_ms_per_image"] < methods["rpn"]["ms_per_image"]
    assert methods["selective_search_quality"]["mean_proposals"] > methods["selective_search_fast"]["mean_proposals"]


def test_recall_in_the_json_is_that_of_the_proposals_written(small_study):
    # Recompute selective search's (fast) recall from the proposal file the study kept for the Fast R-CNN.
    output = small_study[0]
    result = json.loads((output / "proposal_study.json").read_text())
    dataset = CocoDetectionDataset(output / "data" / "held-out" / "annotations.json", output / "data" / "held-out" / "images")
    kept = ProposalSet.load(output / "proposals" / "eval-selective-search-fast.npz")
    objects, boxes = [], []
    for image in dataset.images:
        annotations = dataset[dataset.images.index(image)]["annotations"]["annotations"]
        objects.append(np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in annotations)]))
        boxes.append(kept.for_image(image["id"]))
    table = proposal_recall(objects, boxes, [100, 300, 1000, 2000])
    np.testing.assert_allclose(table.recall, result["proposals"]["methods"]["selective_search_fast"]["recall"])
    assert np.mean(list(kept.seconds.values())) * 1000 == pytest.approx(
        result["proposals"]["methods"]["selective_search_fast"]["ms_per_image"], abs=0.01
    )


def test_detection_comparison_trains_and_evaluates_both_detectors(small_study):
    output = small_study[0]
    detection = json.loads((output / "proposal_study.json").read_text())["detection"]
    detectors = detection["detectors"]
    assert set(detectors) == {"faster_rcnn", "fast_rcnn"}
    for name, detector in detectors.items():
        assert detector["trained_by"] == "this study" and detector["train_steps"] == detection["schedule"]["max_steps"]
        assert all(0 <= detector[key] <= 1 for key in ("AP", "AP50", "AP75", "VOC_mAP50")), name
        assert detector["total_ms_per_image"] == pytest.approx(
            detector["external_proposal_ms_per_image"] + detector["network_ms_per_image"], abs=0.02
        )
    assert detectors["faster_rcnn"]["external_proposal_ms_per_image"] == 0
    assert detectors["fast_rcnn"]["external_proposal_ms_per_image"] > 0
    fast_rcnn_config = json.loads((output / "fast-rcnn" / "config.json").read_text())
    assert fast_rcnn_config["proposal_source"] == "external"


def test_plots_report_and_model_card(small_study):
    output, card = small_study[:2]
    for name in ("recall_vs_proposals.png", "recall_vs_iou.png", "time_per_image.png"):
        assert (output / name).read_bytes()[:8] == PNG_SIGNATURE, name
    report = (output / "report.md").read_text()
    assert "| RPN |" in report and "| selective search (fast) |" in report and "| Fast R-CNN |" in report
    command = report.split("Measured with `")[1].split("`")[0]
    assert command.startswith("faster-rcnn-hub proposals-study ") and "--small" in command and "--model-card" in command
    text = card.read_text()
    assert text.startswith("# A model card\n\nIts own text.") and text.count(CARD_SECTION_START) == 1
    assert report.strip() in text


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--annotations", "a.json"], "Give both --annotations and --images"),
        (["--train-annotations", "t.json", "--train-images", "t"], "give its held-out set too"),
        (["--model-card", "missing/README.md"], "is not a file"),
    ],
)
def test_bad_options_stop_with_one_error_line(tmp_path, capsys, arguments, message):
    assert main(["proposals-study", "--output", str(tmp_path / "out"), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("faster-rcnn-hub proposals-study: error:") and message in error and "\n" not in error
    assert not (tmp_path / "out").exists()
