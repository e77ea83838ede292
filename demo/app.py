"""Hugging Face Space entry point of the faster-rcnn-hub demo (the page itself lives in faster_rcnn_hub.demo).

Serves the converted model folders or Hub ids listed (separated by spaces) in the Space variable
FASTER_RCNN_HUB_MODELS (the first is selected), then the package's bundled synthetic-shapes model; the page says
which are real-photo models. Locally, `faster-rcnn-hub demo` does the same.
"""

import os

from faster_rcnn_hub.demo import create_demo, launch_demo

demo = create_demo(models=os.environ.get("FASTER_RCNN_HUB_MODELS", "").split())

if __name__ == "__main__":
    launch_demo(demo)
