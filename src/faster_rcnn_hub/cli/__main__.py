"""`python -m faster_rcnn_hub.cli ...` (what `accelerate launch -m faster_rcnn_hub.cli ...` runs)."""

import sys

from .main import main

sys.exit(main())
