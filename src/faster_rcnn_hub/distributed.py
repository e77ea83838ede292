"""Which process this is, when a command runs under `accelerate launch` (or `torchrun`), and the few collective
operations the commands need. Outside such a launch everything is a plain single process and accelerate is not
imported (it is an optional dependency: the `train` extra)."""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch

from .errors import MissingDependencyError

# Processes wait for each other at the end of `predict` and while the main process evaluates or saves; with
# shards of unequal cost that wait can be long, longer than torch.distributed's default 30 minutes.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=6)


def launched_distributed() -> bool:
    """True in a process started by `accelerate launch` / `torchrun` with more than one process in all."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def import_accelerate() -> Any:
    try:
        import accelerate
    except ImportError as error:
        raise MissingDependencyError(
            "Running on several processes needs accelerate: pip install 'faster-rcnn-hub[train]'."
        ) from error
    return accelerate


def use_cpu() -> bool:
    """Whether the processes of a launch run on the CPU (gloo): asked for (`accelerate launch --cpu`), or no GPU.

    accelerate only forms a CPU process group when told to; without this, processes launched on a machine without
    GPUs would each run alone.
    """
    from accelerate.utils import parse_flag_from_env

    return parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()


def process_group_kwargs() -> list[Any]:
    """accelerate's handler that sets the collective timeout (see `COLLECTIVE_TIMEOUT`)."""
    from accelerate.utils import InitProcessGroupKwargs

    return [InitProcessGroupKwargs(timeout=COLLECTIVE_TIMEOUT)]


class Processes:
    """This process's place among the processes of a run, with accelerate's collectives; one process when the
    command was not launched on several.

    Args:
        device: The device of a single-process run (`None`: CUDA when available). Under a distributed launch each
            process uses the device accelerate gives it.
    """

    def __init__(self, device: str | torch.device | None = None) -> None:
        self._state = None
        if launched_distributed():
            import_accelerate()
            from accelerate import PartialState

            self._state = PartialState(cpu=use_cpu(), timeout=COLLECTIVE_TIMEOUT)
            self.device = self._state.device
        else:
            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    @property
    def num_processes(self) -> int:
        return self._state.num_processes if self._state is not None else 1

    @property
    def index(self) -> int:
        return self._state.process_index if self._state is not None else 0

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def wait_for_everyone(self) -> None:
        if self._state is not None:
            self._state.wait_for_everyone()

    def broadcast(self, value: Any) -> Any:
        """The main process's `value`, in every process."""
        if self._state is None:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value])[0]

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value`, in process order, in every process."""
        if self._state is None:
            return [value]
        from accelerate.utils import gather_object

        return gather_object([value])

    def share(self, items: list[Any]) -> list[Any]:
        """This process's contiguous share of `items` (sizes differ by one at most; nothing repeated)."""
        if self._state is None:
            return list(items)
        with self._state.split_between_processes(list(items)) as share:
            return list(share)
