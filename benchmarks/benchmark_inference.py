"""Inference speed of this package against torchvision's and mmdetection's Faster R-CNN, in one run.

    python benchmarks/benchmark_inference.py                      # the full benchmark of benchmarks/RESULTS.md
    python benchmarks/benchmark_inference.py --runs 3 --dtypes float32 --skip-memory   # a quicker look

Contenders, timed alternately (one run of each, then the next round) so that a change in the machine's load hits
all of them alike; the figure is the median of `--runs` timed rounds after `--warmup` untimed ones:

- `ours-<dtype>`: `FasterRCNNForObjectDetection` on the fixtures' seeded full-size `r50_fpn_1x_coco` checkpoint
  (or `--model DIR`), image processor + forward + post-processing, from a decoded RGB array to detections.
  `ours-float32-unfused` is the same model with `enable_fused_inference(False)`: mmdetection's layers as they are.
- `torchvision`: `fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)`, from the same array (its own
  transform resizes to 800 x 1333 and pads to a multiple of 32, as ours does).
- `mmdetection`: `mmdet.apis.inference_detector` when mmdet is importable; otherwise skipped with a note.

Also reported: images/s for a batch of 8 mixed-size images against the same 8 one at a time, peak resident memory
(each contender in a fresh subprocess), the FLOPs of one forward (`torch.utils.flop_counter`), the machine's
measured throughput on an FPN-sized 3x3 convolution and the fraction of it each contender achieves, and, for a
reduced-precision dtype, how many float32 detections it keeps.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from faster_rcnn_hub.detection import NETWORK_DTYPES

# "tf32": float32 weights with `enable_tf32()`, CUDA's TF32 convolutions and matrix products (float32 is exact).
BENCHMARK_DTYPES = {**NETWORK_DTYPES, "tf32": NETWORK_DTYPES["float32"]}

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
IMAGES = FIXTURES / "images"
CASE = "r50_fpn_1x_coco"
# A reduced-precision detection "keeps" a float32 one when it has the same label, IoU >= this and a score within
# LOOSE_SCORE_DIFFERENCE: the fixtures' rule with looser tolerances (theirs are IoU 0.99 and 1e-3).
LOOSE_IOU = 0.9
LOOSE_SCORE_DIFFERENCE = 0.05


# ----------------------------------------------------------------------------------------------- inputs


def load_rgb(path: Path) -> np.ndarray:
    return np.array(Image.open(path).convert("RGB"))


def mixed_batch() -> list[np.ndarray]:
    """Eight images of six sizes: the fixture images plus two crops, so the batch mixes aspect ratios."""
    names = ["coffee", "astronaut", "chelsea", "camera", "wide_pattern", "tiny_noise"]
    images = [load_rgb(IMAGES / f"{name}.png") for name in names]
    images.append(np.ascontiguousarray(images[0][:300, :520]))
    images.append(np.ascontiguousarray(images[1][64:, :400]))
    return images


def seeded_checkpoint(cache: Path) -> Path:
    """The fixtures' seeded full-size r50 checkpoint in mmdetection's format, written once into `cache`."""
    checkpoint = cache / f"{CASE}.pth"
    if not checkpoint.exists():
        spec = importlib.util.spec_from_file_location("seeded_weights", FIXTURES / "seeded_weights.py")
        seeded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(seeded)
        manifest = json.loads((FIXTURES / "mmdet" / CASE / "manifest.json").read_text())
        cache.mkdir(parents=True, exist_ok=True)
        state = {"meta": manifest.get("meta", {}), "state_dict": seeded.seeded_state_dict(manifest, manifest["seed"])}
        with tempfile.NamedTemporaryFile(dir=cache, suffix=".partial", delete=False) as partial:
            torch.save(state, partial)
        os.replace(partial.name, checkpoint)
    return checkpoint


def seeded_checkpoint_model(cache: Path) -> Path:
    """The seeded checkpoint converted once into `cache`."""
    model_dir = cache / CASE
    if not (model_dir / "model.safetensors").exists():
        from faster_rcnn_hub.conversion import convert_checkpoint

        convert_checkpoint(seeded_checkpoint(cache), model_dir, overwrite=True)
    return model_dir


# ------------------------------------------------------------------------------------------- contenders


class Contender:
    """`detect(images)` runs one batch (a list of RGB arrays) to final detections."""

    name: str
    model: torch.nn.Module

    def detect(self, images: list[np.ndarray]) -> Any:
        raise NotImplementedError

    def forward_for_flops(self, image: np.ndarray) -> None:
        self.detect([image])


class Ours(Contender):
    def __init__(self, model_dir: Path, dtype: str, device: torch.device, fused: bool = True) -> None:
        from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor

        self.name = f"ours-{dtype}" + ("" if fused else "-unfused")
        self.device = device
        self.processor = FasterRCNNImageProcessor.from_pretrained(model_dir)
        self.model = FasterRCNNForObjectDetection.from_pretrained(model_dir, dtype=BENCHMARK_DTYPES[dtype])
        self.model = self.model.to(device).eval().enable_tf32(dtype == "tf32")
        self.fused = fused
        self.model.enable_fused_inference(fused)

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        inputs = self.processor(images=images, return_tensors="pt", device=self.device)
        outputs = self.model(**inputs)
        return self.processor.post_process_object_detection(outputs, threshold=0.0)

    def forward_for_flops(self, image: np.ndarray) -> None:
        # The FLOP counter sees aten convolutions, not oneDNN's fused ones: count the unfused model (same math).
        self.model.enable_fused_inference(False)
        try:
            self.detect([image])
        finally:
            self.model.enable_fused_inference(self.fused)


class TorchVision(Contender):
    def __init__(self, device: torch.device) -> None:
        from torchvision.models.detection import fasterrcnn_resnet50_fpn

        self.name = "torchvision"
        self.device = device
        self.model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).to(device).eval()

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        tensors = [torch.from_numpy(image).to(self.device).permute(2, 0, 1).float().div_(255) for image in images]
        return self.model(tensors)


class MMDetection(Contender):
    def __init__(self, device: torch.device, cache: Path) -> None:
        import mmdet
        from mmdet.apis import inference_detector, init_detector

        self.name = "mmdetection"
        self.inference_detector = inference_detector
        # mmdet's wheel carries its configs under .mim/; the checkpoint is the seeded one ours converts.
        config = Path(mmdet.__file__).parent / ".mim" / "configs" / "faster_rcnn" / "faster-rcnn_r50_fpn_1x_coco.py"
        self.model = init_detector(str(config), str(seeded_checkpoint(cache)), device=str(device))

    def detect(self, images: list[np.ndarray]) -> Any:
        # mmdetection takes BGR arrays, as cv2.imread returns them.
        return self.inference_detector(self.model, [np.ascontiguousarray(image[..., ::-1]) for image in images])


def mmdetection_note() -> str | None:
    """None when mmdetection can run here, otherwise why not."""
    if importlib.util.find_spec("mmdet") is None:
        return "mmdetection is not installed (it needs mmcv's compiled ops, which have no wheel for torch 2.14)"
    return None


def build_contenders(args: argparse.Namespace, device: torch.device, model_dir: Path) -> list[Contender]:
    contenders: list[Contender] = []
    for dtype in args.dtypes:
        contenders.append(Ours(model_dir, dtype, device))
        if dtype == "float32" and args.unfused:
            contenders.append(Ours(model_dir, dtype, device, fused=False))
    if "torchvision" in args.others:
        contenders.append(TorchVision(device))
    if "mmdetection" in args.others and mmdetection_note() is None:
        contenders.append(MMDetection(device, Path(args.cache)))
    return contenders


# ----------------------------------------------------------------------------------------------- timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], Any], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def alternate(
    contenders: list[Contender], job: Callable[[Contender], Any], runs: int, warmup: int, device: torch.device
) -> dict[str, float]:
    """Median seconds of `job(contender)` per contender, rounds alternating between contenders."""
    times: dict[str, list[float]] = {contender.name: [] for contender in contenders}
    for round_index in range(warmup + runs):
        for contender in contenders:
            seconds = timed(lambda: job(contender), device)
            if round_index >= warmup:
                times[contender.name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def forward_flops(contender: Contender, image: np.ndarray) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        contender.forward_for_flops(image)
    return float(counter.get_total_flops())


def conv_throughput(device: torch.device, dtype: torch.dtype, runs: int = 5, allow_tf32: bool = False) -> float:
    """GFLOP/s of one FPN-sized 3x3 convolution (256 -> 256 channels on 200 x 304, P2 of an 800 x 1216 input),
    channels-last, as fast as this machine runs it; the yardstick for how close to the hardware a model gets.
    float32 is measured in true float32 (as the model runs it), unless `allow_tf32`."""
    from faster_rcnn_hub.models.faster_rcnn.fused_inference import float32_precision_scope

    channels, height, width = 256, 200, 304
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(device=device, dtype=dtype).eval()
    conv = conv.to(memory_format=torch.channels_last)
    features = torch.randn(1, channels, height, width, device=device, dtype=dtype)
    features = features.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), float32_precision_scope(allow_tf32):
        conv(features)
        seconds = statistics.median(timed(lambda: conv(features), device) for _ in range(runs))
    return 2 * channels * channels * 9 * height * width / seconds / 1e9


# ---------------------------------------------------------------------------------------------- parity


def kept_detections(reference: dict[str, torch.Tensor], candidate: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(matched, reference count): each reference detection, in score order, matched to the unused candidate of
    the same label with the highest IoU, counted when IoU >= LOOSE_IOU and the scores differ by at most
    LOOSE_SCORE_DIFFERENCE."""
    from torchvision.ops import box_iou

    ref_boxes, boxes = reference["boxes"].double().cpu(), candidate["boxes"].double().cpu()
    ref_labels, labels = reference["labels"].tolist(), candidate["labels"].tolist()
    ref_scores, scores = reference["scores"].tolist(), candidate["scores"].tolist()
    if not len(ref_boxes) or not len(boxes):
        return 0, len(ref_boxes)
    overlaps = box_iou(ref_boxes, boxes)
    used: set[int] = set()
    matched = 0
    for index in range(len(ref_boxes)):
        candidates = [other for other in range(len(boxes)) if other not in used and labels[other] == ref_labels[index]]
        if not candidates:
            continue
        best = max(candidates, key=lambda other: overlaps[index, other].item())
        if overlaps[index, best] >= LOOSE_IOU and abs(scores[best] - ref_scores[index]) <= LOOSE_SCORE_DIFFERENCE:
            used.add(best)
            matched += 1
    return matched, len(ref_boxes)


# ---------------------------------------------------------------------------------------------- memory


def peak_rss_in_subprocess(args: argparse.Namespace, contender: str, batch: int) -> float:
    """Peak resident MiB of a fresh process that loads `contender` and runs `batch` images twice."""
    command = [sys.executable, __file__, "--measure-memory", contender, "--batch", str(batch),
               "--threads", str(args.threads), "--device", args.device, "--cache", str(args.cache)]  # fmt: skip
    if args.model:
        command += ["--model", str(args.model)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def measure_memory(args: argparse.Namespace, device: torch.device, model_dir: Path) -> None:
    name = args.measure_memory
    if name == "torchvision":
        contender: Contender = TorchVision(device)
    else:
        dtype = name.split("-")[1]
        contender = Ours(model_dir, dtype, device, fused=not name.endswith("unfused"))
    images = mixed_batch()[: args.batch] if args.batch > 1 else [load_rgb(IMAGES / "coffee.png")]
    for _ in range(2):
        contender.detect(images)
    if device.type == "cuda":
        print(torch.cuda.max_memory_allocated(device) / 2**20)
    else:
        print(peak_resident_mib())


def peak_resident_mib() -> float:
    """This process's peak resident memory. `VmHWM` rather than `ru_maxrss`, which a process started by fork and
    exec inherits from its parent on Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------- report


def machine_description(device: torch.device) -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    description = {
        "cpu": f"{cpu}, {os.cpu_count()} logical cores, ISA {torch.backends.cpu.get_cpu_capability()}",
        "threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": importlib.import_module("torchvision").__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if device.type == "cuda":
        description["gpu"] = torch.cuda.get_device_name(device)
    return description


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    model_dir = Path(args.model) if args.model else seeded_checkpoint_model(Path(args.cache))
    if args.measure_memory:
        measure_memory(args, device, model_dir)
        return {}
    contenders = build_contenders(args, device, model_dir)
    single = [load_rgb(IMAGES / args.image)]
    batch = mixed_batch()
    report: dict[str, Any] = {"machine": machine_description(device), "inputs": {
        "model": str(model_dir), "image": args.image, "batch": "8 mixed sizes (fixture images and 2 crops)",
        "runs": args.runs, "warmup": args.warmup, "batch_runs": args.batch_runs, "device": str(device)}}  # fmt: skip
    notes = []
    if "mmdetection" in args.others and mmdetection_note():
        notes.append(f"mmdetection skipped: {mmdetection_note()}")
    report["notes"] = notes

    print("latency, one image ...", flush=True)
    report["latency_s"] = alternate(contenders, lambda contender: contender.detect(single), args.runs, args.warmup, device)
    print(json.dumps(report["latency_s"]), flush=True)
    if not args.skip_batch:
        print("batch of 8 vs one at a time ...", flush=True)
        batch_runs = args.batch_runs
        batching = [contender for contender in contenders if contender.name in args.batch_contenders]
        batched = alternate(batching, lambda contender: contender.detect(batch), batch_runs, 1, device)
        one_by_one = alternate(
            batching, lambda contender: [contender.detect([image]) for image in batch], batch_runs, 0, device
        )
        report["images_per_s"] = {
            name: {"batch_of_8": len(batch) / batched[name], "one_at_a_time": len(batch) / one_by_one[name]}
            for name in batched
        }
        print(json.dumps(report["images_per_s"]), flush=True)
    print("FLOPs and convolution throughput ...", flush=True)
    report["gflop_per_forward"] = {}
    for contender in contenders:
        if contender.name.startswith("ours-") and "float32" not in contender.name and "ours-float32" in report[
            "gflop_per_forward"
        ]:
            # The same network in another dtype; the FLOP counter's half-precision convolution path takes hours.
            report["gflop_per_forward"][contender.name] = report["gflop_per_forward"]["ours-float32"]
        else:
            report["gflop_per_forward"][contender.name] = forward_flops(contender, single[0]) / 1e9
    report["conv3x3_gflops_per_s"] = {
        name: conv_throughput(device, BENCHMARK_DTYPES[name], allow_tf32=name == "tf32")
        for name in sorted({"float32", *args.dtypes})
    }
    report["fraction_of_conv_throughput"] = {
        contender.name: report["gflop_per_forward"][contender.name] / report["latency_s"][contender.name]
        / report["conv3x3_gflops_per_s"][contender.name.split("-")[1] if contender.name.startswith("ours") else "float32"]
        for contender in contenders
    }  # fmt: skip
    reduced = [contender for contender in contenders if contender.name.startswith("ours-") and "float32" not in contender.name]
    reference = next((contender for contender in contenders if contender.name == "ours-float32"), None)
    if reduced and reference is not None:
        report["kept_float32_detections"] = {}
        for contender in reduced:
            kept = [0, 0]
            for name in args.parity_images:
                image = [load_rgb(IMAGES / name)]
                matched, total = kept_detections(reference.detect(image)[0], contender.detect(image)[0])
                kept[0] += matched
                kept[1] += total
            report["kept_float32_detections"][contender.name] = {
                "kept": kept[0], "of": kept[1], "rule": f"same label, IoU >= {LOOSE_IOU}, score within "
                f"{LOOSE_SCORE_DIFFERENCE}", "images": args.parity_images}  # fmt: skip
    if not args.skip_memory:
        print("peak memory (fresh subprocess per contender) ...", flush=True)
        report["peak_memory_mib"] = {
            contender.name: {
                f"batch_{size}": peak_rss_in_subprocess(args, contender.name, size)
                for size in ((1, 8) if contender.name in args.batch_contenders else (1,))
            }
            for contender in contenders
            if contender.name != "mmdetection"
        }
    report["ratios"] = ratios(report)
    return report


def ratios(report: dict[str, Any]) -> dict[str, float]:
    """Other contenders' latency divided by ours: how many times faster ours is."""
    latency = report["latency_s"]
    return {
        f"{other} / {ours}": latency[other] / latency[ours]
        for ours in latency
        if ours.startswith("ours-")
        for other in latency
        if not other.startswith("ours-")
    }


def markdown(report: dict[str, Any]) -> str:
    lines = ["| contender | latency (s) | GFLOP | GFLOP/s | of conv peak | batch 8 img/s | one-by-one img/s | peak MiB (1 / 8) |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, seconds in report["latency_s"].items():
        gflop = report["gflop_per_forward"][name]
        throughput = report.get("images_per_s", {}).get(name, {})
        memory = report.get("peak_memory_mib", {}).get(name, {})
        lines.append(
            f"| {name} | {seconds:.3f} | {gflop:.0f} | {gflop / seconds:.0f} | "
            f"{report['fraction_of_conv_throughput'][name]:.0%} | {throughput.get('batch_of_8', float('nan')):.2f} | "
            f"{throughput.get('one_at_a_time', float('nan')):.2f} | "
            f"{memory.get('batch_1', float('nan')):.0f} / {memory.get('batch_8', float('nan')):.0f} |"
        )
    lines.append("")
    for key, value in report["ratios"].items():
        lines.append(f"- {key} latency: {value:.2f}x")
    for dtype, value in report["conv3x3_gflops_per_s"].items():
        lines.append(f"- 3x3 conv 256->256 on 200x304, channels-last, {dtype}: {value:.0f} GFLOP/s")
    for name, kept in report.get("kept_float32_detections", {}).items():
        lines.append(f"- {name} keeps {kept['kept']} of {kept['of']} float32 detections ({kept['rule']})")
    lines.extend(f"- {note}" for note in report["notes"])
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--batch-runs", type=int, default=2,
                        help="timed rounds of the batch-of-8 measurement, after one warm-up (default 2)")  # fmt: skip
    parser.add_argument("--image", default="coffee.png", help="fixture image for latency (default coffee.png)")
    parser.add_argument("--model", help="converted model folder (default: the fixtures' seeded r50_fpn_1x_coco)")
    parser.add_argument("--cache", default=str(ROOT / "benchmarks" / ".cache"), help="where the seeded model goes")
    parser.add_argument("--dtypes", type=lambda text: text.split(","), default=["float32", "bfloat16"],
                        help="our dtypes, comma-separated: float32, tf32 (CUDA), bfloat16, float16 (default float32,bfloat16)")  # fmt: skip
    parser.add_argument("--others", type=lambda text: text.split(",") if text else [],
                        default=["torchvision", "mmdetection"], help="other contenders (default torchvision,mmdetection)")  # fmt: skip
    parser.add_argument("--no-unfused", dest="unfused", action="store_false", help="skip ours-float32-unfused")
    parser.add_argument("--parity-images", type=lambda text: text.split(","), default=["astronaut.png", "chelsea.png"],
                        help="images on which reduced-precision detections are compared with float32")  # fmt: skip
    parser.add_argument("--batch-contenders", type=lambda text: text.split(","),
                        default=["ours-float32", "torchvision", "mmdetection"],
                        help="contenders timed on the batch of 8 (default ours-float32,torchvision,mmdetection)")  # fmt: skip
    parser.add_argument("--skip-batch", action="store_true", help="skip the batch-of-8 measurement")
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--json", dest="json_path", help="also write the report as JSON here")
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--measure-memory", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.dtypes) - set(BENCHMARK_DTYPES)
    if unknown:
        parser.error(f"unknown dtype(s) {sorted(unknown)}; choose from {sorted(BENCHMARK_DTYPES)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    report = run(args)
    if not report:
        return
    print(json.dumps(report, indent=2))
    print(markdown(report))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
