"""The package's layering (ARCHITECTURE.md), checked from the source: which module may import which, no import
cycles (module-level or inside functions), and a command line that starts without torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "faster_rcnn_hub"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE
MODEL_FOLDER = SOURCE / "models" / "faster_rcnn"

# Rank of each part of the package (ARCHITECTURE.md): a part imports itself and parts of lower rank only.
RANKS = {
    "models": 0,
    "errors": 1,
    "lazy_exports": 1,
    "import_hooks": 1,
    "default_model": 2,
    "distributed": 2,
    "threads": 2,
    "output_files": 2,
    "runtime": 2,
    "zoo": 3,
    "hub": 3,
    "data": 3,
    "detection": 3,
    "proposals": 3,
    "conversion": 4,
    "evaluation": 4,
    "prediction": 4,
    "training": 5,
    "demo": 5,
    "exporting": 5,
    "registration": 6,
    "proposal_study": 6,
    "cli": 7,
    "": 8,  # the package's own __init__.py
}
# What a converted folder's model code may import besides itself: what `trust_remote_code=True` users have.
MODEL_CODE_THIRD_PARTY = {"torch", "torchvision", "transformers", "numpy", "PIL", "cv2", "huggingface_hub"}


def module_name(path: Path, source: Path) -> str:
    parts = list(path.relative_to(source.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(source: Path) -> dict[str, Path]:
    return {module_name(path, source): path for path in sorted(source.rglob("*.py"))}


def imports_of(path: Path) -> list[tuple[int, str, list[str], int]]:
    """`(level, module, names, line)` of every import statement, at any depth (functions, TYPE_CHECKING blocks)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((0, alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", [alias.name for alias in node.names], node.lineno))
    return found


def resolve(importer: str, path: Path, level: int, module: str) -> str:
    if level == 0:
        return module
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{module}" if module else package


def internal_targets(importer: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int]]:
    """The package modules `importer` imports: each one named, the submodules its `from` imports name, and the
    packages whose `__init__.py` runs on the way (its own ancestors aside, which are already loading)."""
    root = importer.split(".")[0]
    targets = []
    own_ancestors = {importer.rsplit(".", depth)[0] for depth in range(1, importer.count(".") + 1)}
    for level, module, names, line in imports_of(path):
        base = resolve(importer, path, level, module)
        if base != root and not base.startswith(root + "."):
            continue
        named = [f"{base}.{name}" for name in names if f"{base}.{name}" in known] or [base]
        for target in named:
            parts = target.split(".")
            for depth in range(2, len(parts) + 1):
                step = ".".join(parts[:depth])
                if step in known and step not in own_ancestors and step != importer:
                    targets.append((step, line))
    return targets


def part_of(name: str) -> str:
    return name.split(".")[1] if "." in name else ""


def model_folder_violations(folder: Path) -> list[str]:
    allowed = set(sys.stdlib_module_names) | MODEL_CODE_THIRD_PARTY
    problems = []
    for path in sorted(folder.glob("*.py")):
        for level, module, _, line in imports_of(path):
            where = f"{path.name}:{line}"
            if level > 1:
                problems.append(f"{where} imports from outside the model folder ({'.' * level}{module})")
            elif level == 0 and module.split(".")[0] not in allowed:
                problems.append(f"{where} imports {module}, which a converted folder's users may not have")
    return problems


def layer_violations(source: Path) -> list[str]:
    known = modules(source)
    unplaced = sorted({part_of(name) for name in known} - set(RANKS))
    problems = [f"{part!r} has no place in the layers" for part in unplaced]
    for importer, path in known.items():
        for target, line in internal_targets(importer, path, known):
            source_part, target_part = part_of(importer), part_of(target)
            if source_part == target_part or target_part not in RANKS or source_part not in RANKS:
                continue
            if RANKS[target_part] >= RANKS[source_part]:
                problems.append(f"{importer}:{line} imports {target}, which is not in a lower layer")
    return problems


def import_cycles(source: Path) -> list[str]:
    known = modules(source)
    graph = {
        name: sorted({target for target, _ in internal_targets(name, path, known)}) for name, path in known.items()
    }
    cycles: list[str] = []
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for target in graph[node]:
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name)
    return cycles


def test_model_folder_imports_only_itself_and_what_remote_code_users_have():
    assert model_folder_violations(MODEL_FOLDER) == []


def test_every_module_imports_only_its_own_part_and_lower_layers():
    assert layer_violations(SOURCE) == []


def test_no_import_cycles_eager_or_lazy():
    assert import_cycles(SOURCE) == []


def test_the_checks_find_what_they_look_for(tmp_path):
    # A made-up package with each kind of mistake: the same checks must report every one.
    package = tmp_path / PACKAGE
    for folder in ("models/faster_rcnn", "zoo", "cli"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "models" / "__init__.py").write_text("")
    (package / "models" / "faster_rcnn" / "rpn.py").write_text("import requests\nfrom ...errors import X\n")
    (package / "errors.py").write_text("X = 1\n")
    (package / "zoo" / "table.py").write_text("def names():\n    from ..cli import main\n")
    (package / "cli" / "main.py").write_text("from ..zoo.table import names\n")
    (package / "cli" / "parser.py").write_text("from . import main\n")
    (package / "cli" / "__init__.py").write_text("from .main import names\n")
    (package / "plugins.py").write_text("")

    assert sorted(problem.split(" ")[0] for problem in model_folder_violations(package / "models" / "faster_rcnn")) == [
        "rpn.py:1",
        "rpn.py:2",
    ]
    layers = layer_violations(package)
    assert "'plugins' has no place in the layers" in layers
    assert any(problem.startswith("faster_rcnn_hub.zoo.table:2 imports faster_rcnn_hub.cli") for problem in layers)
    cycles = import_cycles(package)
    assert any("faster_rcnn_hub.zoo.table" in cycle and "faster_rcnn_hub.cli.main" in cycle for cycle in cycles)


def test_remote_code_is_exactly_the_model_folder():
    from faster_rcnn_hub.hub.remote_code import AUTO_MAP, remote_code_files

    names = [path.name for path in remote_code_files()]
    assert sorted(names) == sorted(path.name for path in MODEL_FOLDER.glob("*.py") if path.name != "__init__.py")
    assert names[:3] == [f"{module}.py" for _, module, _ in AUTO_MAP]


def test_each_entry_module_imports_every_module_it_needs_directly():
    # transformers 4.57 and 5.0 copy into their module cache only the modules an entry module imports directly,
    # so a module reached only through another would be missing there (test_remote_code_versions.py loads them).
    from faster_rcnn_hub.hub.remote_code import AUTO_MAP
    from faster_rcnn_hub.models.faster_rcnn.saving import needed_modules, relative_imports

    for _, entry, _ in AUTO_MAP:
        direct = set(relative_imports(MODEL_FOLDER / f"{entry}.py"))
        assert set(needed_modules(MODEL_FOLDER, [entry])) - {entry} <= direct, entry


CLI_PROBE = """
import json, sys
from faster_rcnn_hub.cli import main
codes = []
for argv in (["--help"], ["zoo"], ["detect"], ["detect", "x.png", "--threshold", "high"]):
    try:
        codes.append(main(argv))
    except SystemExit as exit:
        codes.append(exit.code)
heavy = sorted(name for name in ("torch", "torchvision", "transformers", "cv2") if name in sys.modules)
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def test_help_zoo_and_argument_errors_do_not_import_torch():
    done = subprocess.run([sys.executable, "-c", CLI_PROBE], capture_output=True, text=True, timeout=300)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0, 2, 2], done.stderr[-2000:]
    assert report["heavy"] == []


REGISTRATION_PROBE = """
import sys
order = sys.argv[1]
if order == "package first":
    import faster_rcnn_hub
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection
elif order == "transformers first":
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection, pipeline
    import faster_rcnn_hub
elif order == "model module first":
    from faster_rcnn_hub.models.faster_rcnn.modeling_faster_rcnn import FasterRCNNForObjectDetection
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection
config = AutoConfig.for_model("faster_rcnn", num_classes=3)
model = AutoModelForObjectDetection.from_config(config)
print(type(config).__module__, type(model).__module__)
from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING
print("FasterRCNNImageProcessor" in repr(IMAGE_PROCESSOR_MAPPING[type(config)]))
from faster_rcnn_hub.models.faster_rcnn import modeling_faster_rcnn
print(modeling_faster_rcnn._training_loss_function is not None)
"""


@pytest.mark.matrix
@pytest.mark.parametrize("order", ["package first", "transformers first", "model module first"])
def test_transformers_knows_the_model_whichever_is_imported_first(order):
    done = subprocess.run(
        [sys.executable, "-c", REGISTRATION_PROBE, order],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "faster_rcnn_hub could not" not in done.stderr  # no registration failed (they only warn)
    modules_line, processor_line, losses_line = done.stdout.strip().splitlines()[-3:]
    assert modules_line.split() == [
        "faster_rcnn_hub.models.faster_rcnn.configuration_faster_rcnn",
        "faster_rcnn_hub.models.faster_rcnn.modeling_faster_rcnn",
    ]
    assert processor_line == "True"  # AutoImageProcessor knows the processor
    assert losses_line == "True"  # a forward with labels finds the training losses
