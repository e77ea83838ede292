"""Dataset-scale inference and data-parallel training on several processes: two CPU processes (gloo on loopback)
started with `accelerate launch`, against one process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from faster_rcnn_hub.cli import main
from faster_rcnn_hub.prediction.records import part_paths, read_records
from training_helpers import tiny_config, tiny_dataset

ACCELERATE = str(Path(sys.executable).parent / "accelerate")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch_command(*arguments: str) -> list[str]:
    # --multi_gpu selects accelerate's torchrun launcher; without a GPU the processes form a gloo group on the CPU
    # (`accelerate launch --cpu` would expect MPI for more than one process).
    return [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
            "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
            "-m", "faster_rcnn_hub.cli", *arguments]  # fmt: skip


def _launch(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(_launch_command(*arguments), cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _kill_launch(process: subprocess.Popen) -> None:
    """SIGKILL a launch and every process it started, and wait until all are gone. torchrun starts its workers in
    sessions of their own, so killing the launcher's process group alone would leave them running (and writing)."""
    import psutil  # accelerate's dependency

    launcher = psutil.Process(process.pid)
    doomed = [launcher, *launcher.children(recursive=True)]
    os.killpg(process.pid, signal.SIGKILL)
    for member in doomed:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(doomed, timeout=60)
    assert not alive, f"processes of the launch survived SIGKILL: {alive}"
    process.wait()


def _in_one_thread(arguments: list[str]) -> int:
    """Run the command in this process with one thread, as accelerate runs each launched process: float results
    depend on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(arguments)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict")
    tiny_dataset(folder / "data", num_images=40)
    (folder / "data" / "images" / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def test_predict_on_two_processes_equals_one_process_and_survives_a_kill(image_folder, capsys):
    folder = image_folder
    common = ["--images", "data/images", "--num-workers", "0", "--no-progress"]
    os.chdir(folder)
    assert _in_one_thread(["predict", *common, "--output", "single.jsonl"]) == 0
    reference = (folder / "single.jsonl").read_text()
    records = [json.loads(line) for line in reference.splitlines()]
    assert len(records) == 41 and [record["path"] for record in records] == sorted(r["path"] for r in records)
    assert records[-1]["path"].endswith("zz_corrupt.png") and "error" in records[-1]
    assert "warning: skipped data/images/zz_corrupt.png" in capsys.readouterr().err
    assert sum(len(record.get("detections", [])) for record in records) > 40

    _launch("predict", *common, "--output", "merged.jsonl", cwd=folder)
    assert (folder / "merged.jsonl").read_text() == reference
    assert not part_paths(folder / "merged.jsonl")

    # Kill both processes in the middle of a run (one image a batch, to give the kill time); then tear the last line
    # of a part, as a kill in the middle of a write would, and resume on one process. Float results depend a little
    # on the batch size, so the reference is one process with batches of one image.
    common += ["--batch-size", "1"]
    assert _in_one_thread(["predict", *common, "--output", "single-1.jsonl"]) == 0
    reference = (folder / "single-1.jsonl").read_text()
    assert [json.loads(line)["path"] for line in reference.splitlines()] == [record["path"] for record in records]
    output = folder / "killed.jsonl"
    process = subprocess.Popen(_launch_command("predict", *common, "--output", str(output)),
                               cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while sum(len(read_records(part)) for part in part_paths(output)) < 4:
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    _kill_launch(process)
    parts = part_paths(output)
    done_before = sum(len(read_records(part)) for part in parts)
    assert 4 <= done_before < 41 and not output.exists()
    with open(parts[0], "a", encoding="utf-8") as handle:
        handle.write('{"path": "data/images/0000')
    assert _in_one_thread(["predict", *common, "--output", str(output)]) == 0
    assert output.read_text() == reference
    assert not part_paths(output)
    assert f"{41 - done_before} predicted now" in capsys.readouterr().out


def test_data_parallel_training_equals_one_process_with_the_whole_batch(tmp_path):
    # 5 images, 4 a step: step 2 has one image, so the second process runs a stand-in with weight 0. Frozen
    # BatchNorm (as for pretrained backbones) and samplers large enough to take every candidate (so that no random
    # draw differs between processes): what stays is the order of floating-point sums.
    data = tiny_dataset(tmp_path / "data", num_images=5)
    config = tiny_config(backbone_norm_eval=True, train_cfg={"rpn_num_samples": 100000, "rcnn_num_samples": 100000,
                                                             "rpn_proposal_max_per_img": 100})  # fmt: skip
    config.to_json_file(tmp_path / "config.json")
    common = ["train", "--annotations", str(data / "annotations.json"), "--images", str(data / "images"), "--config",
              str(tmp_path / "config.json"), "--scale", "96,96", "--max-steps", "3", "--warmup-steps", "0", "--lr",
              "0.02", "--lr-schedule", "cosine", "--log-every", "1", "--flip", "0.5", "--no-progress"]  # fmt: skip
    assert _in_one_thread([*common, "--output-dir", str(tmp_path / "single"), "--batch-size", "4"]) == 0
    assert _in_one_thread([*common, "--output-dir", str(tmp_path / "half-batch"), "--batch-size", "2"]) == 0
    _launch(*common, "--output-dir", str(tmp_path / "ddp"), "--batch-size", "2", cwd=tmp_path)

    single, ddp, half = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("single", "ddp", "half-batch"))
    largest_difference = max(float((single[key] - ddp[key]).abs().max()) for key in single)
    assert largest_difference < 1e-6
    # The tolerance tells runs apart: one process with half the batch ends far from both.
    assert max(float((single[key] - half[key]).abs().max()) for key in single) > 1e-3
    single_log, ddp_log = (json.loads((tmp_path / name / "training_log.json").read_text())["log"]
                           for name in ("single", "ddp"))  # fmt: skip
    assert len(single_log) == len(ddp_log) == 3
    for one, two in zip(single_log, ddp_log):
        for key in ("loss", "loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"):
            assert one[key] == pytest.approx(two[key], rel=1e-4, abs=1e-5), (one["step"], key)

    # The checkpoint keeps every process's random state, and a resume must use as many processes.
    checkpoint = tmp_path / "ddp" / "checkpoint-3"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["num_processes"] == 2
    assert len(torch.load(checkpoint / "training_state.pt", weights_only=True)["rng_per_process"]) == 2
    assert main(["train", "--output-dir", str(tmp_path / "ddp"), "--resume", "--no-progress"]) == 2
