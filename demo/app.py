"""Hugging Face Space entry point of the faster-rcnn-hub demo (the page itself lives in faster_rcnn_hub.demo).

Serves the Hub ids listed (separated by spaces) in the Space variable FASTER_RCNN_HUB_MODELS, or, without it,
mmdetection's faster-rcnn_r50_fpn_1x_coco, converted from the model zoo on first start into the download cache
($HF_HOME/faster-rcnn-hub; on a Space with persistent storage, set HF_HOME=/data/.huggingface to keep it across
restarts); then the package's bundled synthetic-shapes model. The page says which are real-photo models.
Locally, `faster-rcnn-hub demo` does the same.
"""

from faster_rcnn_hub.demo import create_demo, launch_demo

demo = create_demo()

if __name__ == "__main__":
    launch_demo(demo)
