"""Training and fine-tuning: mmdetection's Faster R-CNN recipe (targets, sampling, losses), data loading from
COCO files, the training loop with its two schedules, checkpoints and the default-model recipe.

Submodules are imported where they are used: the model imports only the loss computation, so that
`import faster_rcnn_hub` stays light.
"""
