_base_ = [
    '../_base_/models/faster-rcnn_r50-caffe-dc5.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
