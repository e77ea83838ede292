"""Where the versions live: ranges in pyproject.toml (the package's metadata), the exact versions of our scripts and
CI in constraints/locked.txt, the lowest supported ones in constraints/lowest.txt, and the Space's pins in
demo/requirements.txt. Each is checked against the others."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(path: Path) -> dict[str, Version]:
    """`name==version` lines of a requirements/constraints file, by canonical name."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            [specifier] = requirement.specifier
            assert specifier.operator == "==", f"{path.name}: {line} is not an exact pin"
            found[canonicalize_name(requirement.name)] = Version(specifier.version)
    return found


def requirements(group: str | None = None) -> dict[str, Requirement]:
    """The runtime dependencies (`group=None`) or an extra's, without the extras that name this package."""
    listed = PROJECT["dependencies"] if group is None else PROJECT["optional-dependencies"][group]
    parsed = [Requirement(line) for line in listed]
    return {canonicalize_name(item.name): item for item in parsed if canonicalize_name(item.name) != "faster-rcnn-hub"}


def all_requirements() -> dict[str, Requirement]:
    merged = dict(requirements())
    for group in PROJECT["optional-dependencies"]:
        merged.update(requirements(group))
    return merged


def test_metadata_is_a_library_s_ranges_not_pins():
    assert PROJECT["requires-python"] == ">=3.10"
    for name, requirement in all_requirements().items():
        operators = {specifier.operator for specifier in requirement.specifier}
        assert operators == {">="}, f"{name}: {requirement} should be a lower bound (pins go in constraints/locked.txt)"


def test_the_lock_pins_every_dependency_within_its_range_and_nothing_else():
    locked = pins(ROOT / "constraints" / "locked.txt")
    wanted = all_requirements()
    assert sorted(locked) == sorted(wanted)
    for name, requirement in wanted.items():
        assert requirement.specifier.contains(locked[name]), f"{name}=={locked[name]} is outside {requirement}"


def test_the_lowest_versions_are_the_lower_bounds():
    lowest = pins(ROOT / "constraints" / "lowest.txt")
    for name, requirement in requirements().items():
        [specifier] = requirement.specifier
        assert lowest.get(name) == Version(specifier.version), f"{name}: lowest.txt must pin the lower bound of {requirement}"
    # The test tools are installed at their locked versions, not at lower bounds of their own.
    locked = pins(ROOT / "constraints" / "locked.txt")
    for name in set(lowest) - set(requirements()) - {"setuptools"}:
        assert lowest[name] == locked[name], name


def test_space_card_and_requirements_match_the_lock():
    locked = pins(ROOT / "constraints" / "locked.txt")
    card = (ROOT / "demo" / "README.md").read_text()
    front_matter = re.match(r"---\n(.*?)\n---\n", card, re.S).group(1)
    fields = dict(line.split(": ", 1) for line in front_matter.splitlines())
    assert fields["sdk"] == "gradio" and Version(fields["sdk_version"]) == locked["gradio"]
    assert fields["python_version"].strip('"') == "3.11" and (ROOT / "demo" / fields["app_file"]).is_file()
    space = pins(ROOT / "demo" / "requirements.txt")
    assert space == {name: locked[name] for name in requirements()}
