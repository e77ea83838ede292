"""Running code once some modules have finished loading, without loading them.

`when_imported(modules, callback)` calls `callback()` as soon as every module in `modules` has been imported
completely: at once if they already are, otherwise right after the last of them finishes executing (a finder on
`sys.meta_path` wraps their loaders; it steps aside for every other module). A module still executing does not
count, because code that imports it then would see it half-initialized: transformers' `modeling_utils`, for one,
imports its Auto-class modules before it defines `PreTrainedModel`.

`waits_for` names modules the callback imports itself: while one of them is being imported the callback waits
for it to finish, instead of importing it a second time from the middle of its own import.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any


@dataclass
class _Pending:
    callback: Callable[[], None]
    required: frozenset[str]
    waits_for: frozenset[str]
    description: str
    fired: bool = field(default=False)


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """Tracks which watched modules are executing and runs each pending callback once its modules are ready."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._pending: list[_Pending] = []
        self._executing: set[str] = set()
        self._finding: set[str] = set()
        # Every import in the process asks this finder first, so the names it wants are kept ready as a set.
        self._watched: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ bookkeeping
    def add(self, pending: _Pending) -> None:
        with self._lock:
            self._pending.append(pending)
            self._update_watched()
        self._run_ready()

    def _update_watched(self) -> None:
        self._watched = frozenset(
            name for item in self._pending if not item.fired for name in item.required | item.waits_for
        )

    def _ready(self, pending: _Pending) -> bool:
        loaded = all(name in sys.modules and name not in self._executing for name in pending.required)
        return loaded and not (pending.waits_for & self._executing)

    def _run_ready(self) -> None:
        while True:
            with self._lock:
                ready = next((item for item in self._pending if not item.fired and self._ready(item)), None)
                if ready is None:
                    if all(item.fired for item in self._pending) and self in sys.meta_path:
                        sys.meta_path.remove(self)
                    return
                ready.fired = True
                self._update_watched()
            try:
                ready.callback()
            except Exception as error:  # noqa: BLE001 - never break the import that triggered us
                warnings.warn(f"faster_rcnn_hub could not {ready.description}: {error!r}", stacklevel=2)

    # ------------------------------------------------------------------ the finder and its loaders
    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in self._watched or fullname in self._finding:
            return None
        self._finding.add(fullname)
        try:
            spec = _find_with_other_finders(self, fullname, path, target)
        finally:
            self._finding.discard(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _NotifyingLoader(spec.loader, self)
        return spec

    def started(self, name: str) -> None:
        with self._lock:
            self._executing.add(name)

    def finished(self, name: str) -> None:
        with self._lock:
            self._executing.discard(name)
        self._run_ready()


class _NotifyingLoader(importlib.abc.Loader):
    """The module's own loader, telling the watcher when the module starts and finishes executing."""

    def __init__(self, loader: importlib.abc.Loader, watcher: _ImportWatcher) -> None:
        self._loader = loader
        self._watcher = watcher

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The module keeps its real loader (for `inspect.getsource`, resources and reloads).
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._watcher.started(module.__name__)
        try:
            self._loader.exec_module(module)
        finally:
            self._watcher.finished(module.__name__)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def _find_with_other_finders(
    watcher: _ImportWatcher, fullname: str, path: Any, target: ModuleType | None
) -> ModuleSpec | None:
    for finder in list(sys.meta_path):
        find_spec = getattr(finder, "find_spec", None)
        if finder is watcher or find_spec is None:
            continue
        spec = find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None


_WATCHER = _ImportWatcher()


def when_imported(
    modules: Iterable[str],
    callback: Callable[[], None],
    waits_for: Iterable[str] = (),
    description: str | None = None,
) -> None:
    """Call `callback()` once every module in `modules` is completely imported (now, if they already are).

    Args:
        modules: Fully qualified module names.
        callback: Runs once. An exception it raises becomes a warning: it must not break the import of a module
            that happened to trigger it.
        waits_for: Modules the callback imports itself; it does not run while one of them is being imported.
        description: What the callback does, for the warning ("register the model with transformers").
    """
    with _WATCHER._lock:
        if _WATCHER not in sys.meta_path:
            sys.meta_path.insert(0, _WATCHER)
    _WATCHER.add(
        _Pending(
            callback=callback,
            required=frozenset(modules),
            waits_for=frozenset(waits_for),
            description=description or getattr(callback, "__name__", "run a deferred step"),
        )
    )


__all__ = ["when_imported"]
