"""How many threads PyTorch and OpenCV use, for the length of one job.

A library function that sets the process-wide thread count for its own work must give it back: on CPUs whose
convolution kernels split reductions by thread, a later inference in the same process would otherwise give results
that differ in the last bit from the same inference in a fresh process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def thread_count(threads: int, opencv: bool = False) -> Iterator[None]:
    """Run the body with `threads` PyTorch intra-op threads (and OpenCV threads when `opencv`), then restore the
    counts that were set before."""
    import torch

    torch_before = torch.get_num_threads()
    cv2 = None
    if opencv:
        import cv2
    opencv_before = cv2.getNumThreads() if cv2 is not None else None
    torch.set_num_threads(threads)
    if cv2 is not None:
        cv2.setNumThreads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(torch_before)
        if cv2 is not None:
            cv2.setNumThreads(opencv_before)
