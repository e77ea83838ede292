"""The proposal study (`faster-rcnn-hub proposals-study`): the RPN against selective search, for proposal recall,
time, and the detection accuracy of a Faster R-CNN against a Fast R-CNN on selective search."""

from .study import RESULT_FILE, StudySettings, run_proposal_study, write_report

__all__ = ["RESULT_FILE", "StudySettings", "run_proposal_study", "write_report"]
