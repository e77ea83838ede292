"""Running a Python that cannot import faster_rcnn_hub: how the tests show that a folder's remote code suffices."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path


def isolated_environment(tmp_path: Path, extra_paths: list[Path] = ()) -> dict[str, str]:
    """Environment of a Python started with `-S`: `extra_paths` (a folder of other transformers releases, say),
    then site-packages on the path, but neither src/ nor the editable install of this package (its .pth file is
    only read by the site module), and no network."""
    site_packages = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([*map(str, extra_paths), *site_packages]),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "HOME": str(tmp_path),
    }


def run_isolated(
    script: Path, *arguments: str, tmp_path: Path, cwd: Path | None = None, extra_paths: list[Path] = ()
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-S", str(script), *arguments],
        cwd=cwd,
        env=isolated_environment(tmp_path, extra_paths),
        capture_output=True,
        text=True,
    )


# Loads each folder (argv[1]: folders separated by os.pathsep) as remote code and prints, as one JSON line, which
# transformers ran and, per folder, the detections of the model and of the pipeline on the images (argv[2:]).
REMOTE_DRIVER = """
import json, os, sys
try:
    import faster_rcnn_hub
except ModuleNotFoundError:
    pass
else:
    sys.exit("faster_rcnn_hub is importable: the test would not show that remote code suffices")
import torch
import transformers
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForObjectDetection, pipeline

folders, images = sys.argv[1].split(os.pathsep), [Image.open(path) for path in sys.argv[2:]]
report = {"transformers": transformers.__version__, "folders": {}}
for folder in folders:
    model = AutoModelForObjectDetection.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
    assert type(processor).__module__.startswith("transformers_modules."), type(processor).__module__
    results = []
    for image in images:
        with torch.no_grad():
            outputs = model(**processor(images=[image]))
        result = processor.post_process_object_detection(outputs, threshold=0.0)[0]
        results.append({key: value.tolist() for key, value in result.items()})
    # image_processor=folder: transformers before 4.54 does not look for a remote-code processor by itself
    detector = pipeline("object-detection", model=folder, image_processor=folder, trust_remote_code=True)
    report["folders"][folder] = {"model": results, "pipeline": detector(images, threshold=0.0, batch_size=3)}
print(json.dumps(report))
"""
