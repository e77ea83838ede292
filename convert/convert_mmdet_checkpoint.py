"""Convert an mmdetection Faster R-CNN checkpoint into a Hugging Face model folder.

    python convert/convert_mmdet_checkpoint.py CHECKPOINT.pth OUTPUT_DIR [--config CONFIG.py] [--classes ...]

The same as `faster-rcnn-hub convert`; the logic lives in `faster_rcnn_hub.conversion`.
"""

import sys

from faster_rcnn_hub.cli import convert_main

if __name__ == "__main__":
    sys.exit(convert_main())
