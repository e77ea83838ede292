"""`when_imported`: deferred code runs once its modules have finished loading, never while they are half-loaded."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from faster_rcnn_hub.import_hooks import when_imported


@pytest.fixture
def modules_dir(tmp_path, monkeypatch):
    """A folder on sys.path for made-up modules; they are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        sys.modules.pop(name, None)
    importlib.invalidate_caches()


def write(folder, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


def test_runs_after_the_last_module_finishes_and_not_while_one_is_half_loaded(modules_dir):
    seen = []
    # `hooktest_first` imports `hooktest_second` halfway through its own body, like transformers' modeling_utils
    # imports its Auto modules before it defines PreTrainedModel.
    write(modules_dir, "hooktest_second", "VALUE = 2\n")
    write(modules_dir, "hooktest_first", "import hooktest_second\nDEFINED_LATE = 1\n")

    def callback():
        first = sys.modules["hooktest_first"]
        seen.append(getattr(first, "DEFINED_LATE", "half-loaded"))

    when_imported(["hooktest_first", "hooktest_second"], callback)
    assert seen == []  # nothing loaded yet
    import hooktest_first  # noqa: F401

    assert seen == [1]  # once, after hooktest_first completed
    import hooktest_second  # noqa: F401

    assert seen == [1]


def test_runs_at_once_when_the_modules_are_already_loaded(modules_dir):
    write(modules_dir, "hooktest_loaded", "VALUE = 3\n")
    import hooktest_loaded  # noqa: F401

    seen = []
    when_imported(["hooktest_loaded"], lambda: seen.append("ran"))
    assert seen == ["ran"]


def test_waits_for_a_module_that_is_being_imported(modules_dir):
    seen = []
    write(modules_dir, "hooktest_dependency", "VALUE = 4\n")
    # The callback imports `hooktest_user` itself; that module imports the dependency first, which would make
    # the callback import `hooktest_user` from the middle of its own import without `waits_for`.
    write(modules_dir, "hooktest_user", "import hooktest_dependency\nREADY = True\n")

    def callback():
        import hooktest_user

        seen.append(hooktest_user.READY)

    when_imported(["hooktest_dependency"], callback, waits_for=["hooktest_user"])
    import hooktest_user  # noqa: F401

    assert seen == [True]


def test_a_failing_callback_warns_and_does_not_break_the_import(modules_dir):
    write(modules_dir, "hooktest_broken_trigger", "VALUE = 5\n")

    def callback():
        raise RuntimeError("registration exploded")

    when_imported(["hooktest_broken_trigger"], callback, description="register something")
    with pytest.warns(UserWarning, match="could not register something: RuntimeError"):
        import hooktest_broken_trigger
    assert hooktest_broken_trigger.VALUE == 5


def test_the_loaded_module_keeps_its_own_loader(modules_dir):
    import inspect

    write(modules_dir, "hooktest_source", "def answer():\n    return 42\n")
    when_imported(["hooktest_source"], lambda: None)
    import hooktest_source

    assert "return 42" in inspect.getsource(hooktest_source.answer)
    assert type(hooktest_source.__loader__).__name__ != "_NotifyingLoader"
