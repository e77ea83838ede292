"""Object proposals from outside the model: selective search (OpenCV's contrib build) and files of proposals per
image, for a Fast R-CNN (`FasterRCNNForObjectDetection.forward(..., proposals=...)`) and the proposal study."""

from .proposal_file import ProposalSet
from .selective_search import SELECTIVE_SEARCH_MODES, selective_search

__all__ = ["SELECTIVE_SEARCH_MODES", "ProposalSet", "selective_search"]
