"""Faster R-CNN, as transformers keeps a model: configuration, modeling and image processing modules and the
components they are built from.

This folder is exactly the model code that a converted folder (a Hub repository) carries as remote code: its
modules import only each other, with single-dot relative imports, and third-party packages. This `__init__.py` is
the one file not copied; it imports nothing, so that the torch-free modules (`architecture`, `errors`) load
without torch. The package's public names are in `faster_rcnn_hub`.
"""
