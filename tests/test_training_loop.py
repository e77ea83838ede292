"""The training loop: the loss falls, checkpoints resume bit for bit, the alternating schedule trains what each
step should, fine-tuning adapts the class layers, and transformers' Trainer runs the model."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from faster_rcnn_hub import FasterRCNNForObjectDetection
from faster_rcnn_hub.cli import main
from faster_rcnn_hub.errors import FasterRCNNHubError
from faster_rcnn_hub.hub.remote_code import remote_loading_problems
from faster_rcnn_hub.training.checkpoint import list_checkpoints, save_checkpoint
from faster_rcnn_hub.training.data import CocoDetectionDataset, DetectionDataCollator
from faster_rcnn_hub.training.model_setup import model_for_finetuning
from faster_rcnn_hub.training.trainer import DetectionTrainer, TrainingOptions
from training_helpers import tiny_config, tiny_dataset, tiny_processor


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    folder = tiny_dataset(tmp_path_factory.mktemp("data") / "shapes", num_images=6)
    return CocoDetectionDataset(folder / "annotations.json", folder / "images", skip_empty=True)


def _trainer(dataset, output_dir, **overrides):
    torch.manual_seed(0)
    model = FasterRCNNForObjectDetection(tiny_config())
    settings = dict(output_dir=str(output_dir), max_steps=30, batch_size=2, optimizer="sgd", learning_rate=0.02,
                    lr_schedule="cosine", warmup_steps=5, max_grad_norm=10.0, log_every=5, save_every=10,
                    keep_checkpoints=0, progress_bar=False)  # fmt: skip
    settings.update(overrides)
    return DetectionTrainer(model, tiny_processor(), dataset, TrainingOptions(**settings))


def _checkpoint_tensors(checkpoint):
    training_state = torch.load(checkpoint / "training_state.pt", weights_only=True)
    return load_file(str(checkpoint / "model.safetensors")), training_state


def _assert_same_state(first, second):
    (weights, training), (other_weights, other_training) = first, second
    assert weights.keys() == other_weights.keys()
    for key in weights:
        assert torch.equal(weights[key], other_weights[key]), key
    momentum = training["optimizer"]["state"]
    other_momentum = other_training["optimizer"]["state"]
    assert momentum.keys() == other_momentum.keys() and momentum
    for index in momentum:
        assert torch.equal(momentum[index]["momentum_buffer"], other_momentum[index]["momentum_buffer"])
    assert training["scheduler"] == other_training["scheduler"]
    assert torch.equal(training["rng"]["cpu"], other_training["rng"]["cpu"])


def test_loss_falls_and_resuming_continues_exactly_as_the_uninterrupted_run(shapes, tmp_path):
    torch.manual_seed(0)
    uninterrupted = _trainer(shapes, tmp_path / "whole")
    state = uninterrupted.train()
    losses = [record["loss"] for record in state.log]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0], losses

    # The same run, killed right after its step-20 checkpoint...
    torch.manual_seed(0)
    interrupted = _trainer(shapes, tmp_path / "split")
    original_save = interrupted.save

    def save_then_crash(*args):
        path = original_save(*args)
        if interrupted.state.global_step == 20:
            raise KeyboardInterrupt
        return path

    interrupted.save = save_then_crash
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    whole_20 = _checkpoint_tensors(tmp_path / "whole" / "checkpoint-20")
    _assert_same_state(whole_20, _checkpoint_tensors(tmp_path / "split" / "checkpoint-20"))

    # ...then resumed in a fresh process state (other random state, other model weights): the last 10 steps
    # give the very same parameters and optimizer state as the uninterrupted run.
    torch.manual_seed(123)
    resumed = _trainer(shapes, tmp_path / "split")
    resumed.train(resume=True)
    assert resumed.state.global_step == 30
    _assert_same_state(
        _checkpoint_tensors(tmp_path / "whole" / "checkpoint-30"), _checkpoint_tensors(tmp_path / "split" / "checkpoint-30")
    )


def test_a_crash_while_saving_keeps_the_last_good_checkpoint(tmp_path):
    model = FasterRCNNForObjectDetection(tiny_config())
    processor = tiny_processor()
    state = {"optimizer": {}, "rng": {}}
    save_checkpoint(tmp_path, 10, model, processor, state, {"global_step": 10})

    class BrokenProcessor:
        def save_pretrained(self, folder):
            (folder / "preprocessor_config.json").write_text("{half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 20, model, BrokenProcessor(), state, {"global_step": 20})
    with pytest.raises(OSError, match="disk full"):  # over an existing checkpoint of the same step, too
        save_checkpoint(tmp_path, 10, model, BrokenProcessor(), state, {"global_step": 10})
    assert list_checkpoints(tmp_path) == [tmp_path / "checkpoint-10"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-10"]
    assert FasterRCNNForObjectDetection.from_pretrained(tmp_path / "checkpoint-10") is not None
    assert json.loads((tmp_path / "checkpoint-10" / "preprocessor_config.json").read_text())["size"]


PARTS = ("backbone", "fpn", "rpn", "roi_heads")


def _parts_changed(before, after):
    """Per part: which tensors (parameters and BatchNorm buffers) differ."""
    changed = {part: [] for part in PARTS}
    for key, value in before.items():
        if not torch.equal(value, after[key]):
            changed[key.split(".")[0]].append(key)
    return changed


def test_alternating_schedule_trains_exactly_the_parameters_of_each_step(shapes, tmp_path):
    trainer = _trainer(shapes, tmp_path, schedule="alternating", max_steps=2, log_every=2, save_every=2)
    initial = {key: value.clone() for key, value in trainer.model.state_dict().items()}
    snapshots = []
    trainer.on_log = lambda record: snapshots.append(
        {key: value.clone() for key, value in trainer.model.state_dict().items()}
    ) if record["kind"] == "train" else None  # fmt: skip
    trainer.train()
    assert len(snapshots) == 4
    step1, step2, step3, step4 = snapshots

    changed = _parts_changed(initial, step1)  # 1. the RPN, with the shared layers
    assert changed["backbone"] and changed["fpn"] and changed["rpn"] and not changed["roi_heads"]
    # 2. Fast R-CNN, its shared layers restarted from the initial weights; the RPN is left as step 1 made it.
    start2 = {key: initial[key] if key.split(".")[0] in ("backbone", "fpn") else step1[key] for key in initial}
    changed = _parts_changed(start2, step2)
    assert changed["backbone"] and changed["fpn"] and changed["roi_heads"] and not changed["rpn"]
    assert any(not torch.equal(step2[key], step1[key]) for key in initial if key.startswith("backbone."))
    changed = _parts_changed(step2, step3)  # 3. the RPN-only layers; BatchNorm statistics of the backbone too
    assert changed["rpn"] and not (changed["backbone"] or changed["fpn"] or changed["roi_heads"])
    changed = _parts_changed(step3, step4)  # 4. the Fast R-CNN-only layers
    assert changed["roi_heads"] and not (changed["backbone"] or changed["fpn"] or changed["rpn"])
    assert set(changed["roi_heads"]) == {key for key in initial if key.startswith("roi_heads.")}


def test_finetuning_on_other_classes_reinitialises_only_fc_cls_and_fc_reg(converted_model):
    folder = converted_model("tiny_r50_fpn_coco")
    original = FasterRCNNForObjectDetection.from_pretrained(folder).state_dict()
    start = model_for_finetuning(folder, ["circle", "square"])
    assert start.model.config.id2label == {0: "circle", 1: "square"} and start.model.config.num_classes == 2
    assert "fc_cls / fc_reg" in start.notes[0] and "80 classes" in start.notes[0]
    for key, value in start.model.state_dict().items():
        if key.startswith("roi_heads.box_predictor."):
            assert value.shape != original[key].shape
        else:
            assert torch.equal(value, original[key]), key
    predictor = start.model.roi_heads.box_predictor
    assert predictor.cls_score.weight.shape == (3, predictor.cls_score.weight.shape[1])
    assert predictor.cls_score.weight.std().item() == pytest.approx(0.01, rel=0.3)
    same = model_for_finetuning(folder, [original_name for _, original_name in sorted(
        FasterRCNNForObjectDetection.from_pretrained(folder).config.id2label.items())])  # fmt: skip
    assert torch.equal(same.model.roi_heads.box_predictor.cls_score.weight, original["roi_heads.box_predictor.cls_score.weight"])


def test_transformers_trainer_trains_the_model_with_the_collator(shapes, tmp_path):
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(0)
    model = FasterRCNNForObjectDetection(tiny_config())
    before = model.roi_heads.box_predictor.cls_score.weight.detach().clone()
    arguments = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=3, learning_rate=0.01, logging_steps=1,
        remove_unused_columns=False, save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0,
    )  # fmt: skip
    collator = DetectionDataCollator(tiny_processor(), shapes.category_id_to_label, random_flip_probability=0.5)
    trainer = Trainer(model=model, args=arguments, train_dataset=shapes, data_collator=collator)
    result = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert result.global_step == 3
    assert not torch.equal(before, model.roi_heads.box_predictor.cls_score.weight.detach())
    metrics = trainer.evaluate(eval_dataset=shapes)
    assert "eval_loss" in metrics and metrics["eval_loss"] > 0
    # Trainer.save_model writes a folder that loads without this package (test_saving.py has the details).
    trainer.processing_class = tiny_processor()
    trainer.save_model(str(tmp_path / "saved"))
    assert remote_loading_problems(tmp_path / "saved") == []


def test_train_and_evaluate_commands(shapes, tmp_path, capsys):
    data = shapes.annotation_file.parent
    config_path = tmp_path / "config.json"
    config_path.write_text(tiny_config().to_json_string())
    output = tmp_path / "run"
    common = ["--annotations", str(data / "annotations.json"), "--images", str(data / "images"),
              "--output-dir", str(output), "--no-progress"]  # fmt: skip
    code = main(["train", *common, "--config", str(config_path), "--scale", "96,96", "--max-steps", "4",
                 "--batch-size", "2", "--warmup-steps", "2", "--save-every", "2", "--eval-every", "4",
                 "--val-annotations", str(data / "annotations.json"), "--val-images", str(data / "images")])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "random weights" in printed and "[eval step 4]" in printed
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "training_log.json", "README.md"):
        assert (output / name).is_file(), name
    assert "Training log" in (output / "README.md").read_text()
    assert [path.name for path in list_checkpoints(output)] == ["checkpoint-2", "checkpoint-4"]
    # The final model and every checkpoint carry the model code.
    for folder in (output, *list_checkpoints(output)):
        assert remote_loading_problems(folder) == [], folder

    assert main(["train", *common, "--config", str(config_path)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", *common, "--resume"]) == 0  # a finished run resumes to its end at once
    assert "Resuming" in capsys.readouterr().out

    results = tmp_path / "detections.json"
    code = main(["evaluate", "--model", str(output), "--annotations", str(data / "annotations.json"),
                 "--images", str(data / "images"), "--results-json", str(results)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "COCO box AP: AP" in printed and "Pascal VOC mAP@0.5" in printed
    detections = json.loads(results.read_text())
    assert all(set(item) == {"image_id", "category_id", "bbox", "score"} for item in detections)


def test_train_refuses_to_start_without_a_model(shapes, tmp_path, capsys):
    data = shapes.annotation_file.parent
    assert main(["train", "--annotations", str(data / "annotations.json"), "--images", str(data / "images"),
                 "--output-dir", str(tmp_path / "run")]) == 2  # fmt: skip
    assert "--model DIR" in capsys.readouterr().err
    with pytest.raises(FasterRCNNHubError, match="no image with a usable annotation"):
        empty = CocoDetectionDataset(data / "annotations.json", data / "images", skip_empty=True)
        empty.images = []
        DetectionTrainer(FasterRCNNForObjectDetection(tiny_config()), tiny_processor(), empty,
                         TrainingOptions(output_dir=str(tmp_path)))  # fmt: skip
