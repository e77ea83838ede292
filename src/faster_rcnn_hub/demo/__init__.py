"""The web demo: a Gradio page and API around the package's `Detector`.

`models` (which models are offered, loaded once) and `analysis` (running a model and shaping its answer) need
only the core dependencies; `interface` builds the page and needs gradio, the optional `[demo]` extra, which it
imports only when a demo is created, so this package imports without it.
"""

from .analysis import DemoResult, DetectionRunner, select_detections
from .interface import create_demo, import_gradio, launch_demo
from .models import DEFAULT_MODEL_NAME, ModelCatalogue

__all__ = [
    "DEFAULT_MODEL_NAME",
    "DemoResult",
    "DetectionRunner",
    "ModelCatalogue",
    "create_demo",
    "import_gradio",
    "launch_demo",
    "select_detections",
]
