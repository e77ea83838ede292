"""The real-photo models a demo serves when it is given none: the Hub ids in `FASTER_RCNN_HUB_MODELS`, else (on
a machine that is online) mmdetection's `faster-rcnn_r50_fpn_1x_coco`, converted from the model zoo on first
start into a persistent cache and reused on every later start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import FasterRCNNHubError
from ..zoo.download import default_cache_dir

MODELS_ENVIRONMENT_VARIABLE = "FASTER_RCNN_HUB_MODELS"
ONLINE_DEFAULT_MODEL = "faster-rcnn_r50_fpn_1x_coco"
# Under the download cache (`$FASTER_RCNN_HUB_CACHE`, else `$HF_HOME/faster-rcnn-hub`): on a Space with persistent
# storage, HF_HOME=/data/.huggingface keeps it, so the conversion happens once, not on every restart.
CONVERTED_FOLDER = "demo-models"
_OFFLINE_VALUES = {"1", "ON", "YES", "TRUE"}


def is_offline() -> bool:
    """Whether Hugging Face's offline switch, `HF_HUB_OFFLINE`, is on (as CI and air-gapped machines set it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _OFFLINE_VALUES


def default_photo_models(cache_dir: str | os.PathLike | None = None) -> list[str]:
    """Converted folders or Hub ids of the real-photo models to serve when none is given.

    The Hub ids listed (separated by spaces) in `FASTER_RCNN_HUB_MODELS` when it is set; otherwise, unless
    offline, the zoo's `faster-rcnn_r50_fpn_1x_coco`, downloaded (SHA-256-checked, with a progress bar on
    stderr) and converted into `<cache_dir>/demo-models/` on first start. Offline, or when the download or
    conversion fails (said on stderr), none: the demo then serves the models it has.

    Args:
        cache_dir: The download cache (default: `zoo.download.default_cache_dir()`).
    """
    listed = os.environ.get(MODELS_ENVIRONMENT_VARIABLE, "").split()
    if listed:
        return listed
    if is_offline():
        return []
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = folder / CONVERTED_FOLDER / ONLINE_DEFAULT_MODEL
    if (target / "config.json").is_file():
        _say(f"Serving {ONLINE_DEFAULT_MODEL} converted earlier, from {target}.")
        return [str(target)]
    _say(f"First start: converting {ONLINE_DEFAULT_MODEL} from mmdetection's model zoo into {target}.")
    from ..conversion.from_zoo import convert_zoo_model  # the converter loads only when there is converting to do

    try:
        convert_zoo_model(ONLINE_DEFAULT_MODEL, target, cache_dir=folder, progress=True)
    except FasterRCNNHubError as error:
        if (target / "config.json").is_file():  # another process starting at the same time converted it
            return [str(target)]
        _say(f"Could not get {ONLINE_DEFAULT_MODEL}, so no real-photo model is served: {error}")
        return []
    _say(f"Converted {ONLINE_DEFAULT_MODEL} into {target}; later starts reuse it.")
    return [str(target)]


def _say(message: str) -> None:
    # stderr rather than logging: a Space's log shows it whatever logging configuration gradio leaves.
    print(f"faster-rcnn-hub demo: {message}", file=sys.stderr, flush=True)
