"""Training and fine-tuning: mmdetection's Faster R-CNN recipe (targets, sampling, losses), data loading from
COCO files, the training loop with its two schedules, checkpoints and the default-model recipe.

The model code does not import this package (a converted folder carries the model without it): the package
installs `detection_loss.forward_losses` into the model (see `registration.py`), which imports it on the first
forward with `labels`. Submodules are imported where they are used.
"""
