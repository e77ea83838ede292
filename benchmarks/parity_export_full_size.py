"""Full-size export parity: the exported C4 and DC5 models on ONNX Runtime and OpenVINO against the PyTorch model.

    python benchmarks/parity_export_full_size.py --json benchmarks/results-export-parity-c4-dc5.json

For each case (default: the fixtures' seeded full-size `r50_caffe_c4_1x_coco` and `r50_caffe_dc5_1x_coco`
checkpoints, rebuilt from their manifest and seed as the tests rebuild full-size cases, then converted), the model
is exported with `faster_rcnn_hub.export` (ONNX, opset 17, and `--format openvino`, batch 1), and on each fixture
image the detections of both runtimes are compared with the PyTorch model's by the fixtures' rule
(tests/parity.py): matched count, equal counts, largest box and score differences. `--batch-images` also runs a
`--batch dynamic` ONNX export on those images (one padded size) in one run and compares each image's detections.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from benchmark_inference import FIXTURES, IMAGES, ROOT, load_rgb, machine_description

sys.path.insert(0, str(ROOT / "tests"))
from parity import compare_detections  # noqa: E402

CASES = ("r50_caffe_c4_1x_coco", "r50_caffe_dc5_1x_coco")


def seeded_model(case: str, cache: Path) -> Path:
    """The case's seeded checkpoint (manifest and seed, as the tests rebuild it), converted once into `cache`."""
    model_dir = cache / case
    if (model_dir / "model.safetensors").exists():
        return model_dir
    from faster_rcnn_hub.conversion import convert_checkpoint

    spec = importlib.util.spec_from_file_location("seeded_weights", FIXTURES / "seeded_weights.py")
    seeded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seeded)
    manifest = json.loads((FIXTURES / "mmdet" / case / "manifest.json").read_text())
    meta = manifest.get("meta", {})
    if "CLASSES" in meta:
        meta["CLASSES"] = tuple(meta["CLASSES"])
    cache.mkdir(parents=True, exist_ok=True)
    checkpoint = cache / f"{case}.pth"
    torch.save({"meta": meta, "state_dict": seeded.seeded_state_dict(manifest, manifest["seed"])}, checkpoint)
    convert_checkpoint(checkpoint, model_dir, overwrite=True)
    checkpoint.unlink()
    return model_dir


def summary(comparison: Any) -> dict[str, Any]:
    return {**vars(comparison), "passes": comparison.passes}


def measure_case(case: str, cache: Path, images: list[str], batch_images: list[str]) -> dict[str, Any]:
    from faster_rcnn_hub import FasterRCNNForObjectDetection, FasterRCNNImageProcessor, export
    from faster_rcnn_hub.runtime import open_exported

    model_dir = seeded_model(case, cache)
    model = FasterRCNNForObjectDetection.from_pretrained(model_dir).eval()
    processor = FasterRCNNImageProcessor.from_pretrained(model_dir)
    exports = Path(tempfile.mkdtemp(dir=cache))
    result: dict[str, Any] = {"export_seconds": {}, "parity": {}}
    try:
        runtimes = {}
        formats = [("onnxruntime", "onnx", 1), ("openvino", "openvino", 1)]
        if batch_images:
            formats.append(("onnxruntime-batch-dynamic", "onnx", "dynamic"))
        for name, export_format, batch in formats:
            start = time.perf_counter()
            folder = export(model_dir, exports / name, format=export_format, batch=batch)
            result["export_seconds"][name] = round(time.perf_counter() - start, 1)
            runtimes[name] = open_exported(folder)
        references = {}
        for image_name in sorted(set(images) | set(batch_images)):
            image = load_rgb(IMAGES / f"{image_name}.png")
            with torch.inference_mode():
                outputs = model(**processor(images=[image]))
            count = int(outputs.num_detections[0])
            references[image_name] = (
                outputs.pred_boxes[0, :count], outputs.scores[0, :count].tolist(), outputs.labels[0, :count].tolist()
            )
        for name, runtime in runtimes.items():
            if name.endswith("batch-dynamic"):
                prepared = [runtime.preprocessor(load_rgb(IMAGES / f"{image}.png")) for image in batch_images]
                outputs = runtime.run_batch(prepared)
                names = batch_images
            else:
                names = images
                outputs = [runtime.run(runtime.preprocessor(load_rgb(IMAGES / f"{image}.png"))) for image in names]
            result["parity"][name] = {
                image: summary(compare_detections(*references[image], boxes, scores.tolist(), labels.tolist()))
                for image, (boxes, scores, labels) in zip(names, outputs)
            }
            print(case, name, json.dumps(result["parity"][name]), flush=True)
    finally:
        shutil.rmtree(exports)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--images", nargs="+", default=sorted(path.stem for path in IMAGES.glob("*.png")))
    parser.add_argument(
        "--batch-images", nargs="*", default=["chelsea", "coffee"], help="images of one padded size for the batch"
    )
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "faster-rcnn-hub-export-parity"))
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {
        "machine": machine_description(torch.device("cpu")),
        "cases": {case: measure_case(case, Path(args.cache), args.images, args.batch_images) for case in args.cases},
    }
    for case, result in results["cases"].items():
        for runtime, images in result["parity"].items():
            passed = sum(entry["passes"] for entry in images.values())
            worst_box = max(entry["max_box_difference"] for entry in images.values())
            worst_score = max(entry["max_score_difference"] for entry in images.values())
            print(f"{case} {runtime}: {passed}/{len(images)} images pass; box <= {worst_box:.2g} px, "
                  f"score <= {worst_score:.2g}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
