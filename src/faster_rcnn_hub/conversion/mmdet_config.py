"""Reading mmdetection/mmengine config files and embedded config text without executing them.

mmengine runs a config file as Python. We parse it instead and evaluate only the small, side-effect-free
subset that configs are written in: literals, `dict(...)`/`list(...)`/`tuple(...)`, names assigned earlier,
`**` unpacking, arithmetic, `_base_` inheritance (with `_delete_=True`) and `{{_base_.x}}` / `_base_.x`
references. Anything else (imports, other calls, lambdas, attribute access on anything but `_base_`) is refused
with the line it is on.
"""

from __future__ import annotations

import ast
import copy
import json
import operator
import re
from pathlib import Path
from typing import Any

from ..errors import MMDetConfigError

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"
_BASE_REFERENCE = re.compile(r"\{\{\s*_base_\.([\w\.]+)\s*\}\}")
_MAX_BASE_DEPTH = 16

_BINARY_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY_OPERATORS = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_CONSTRUCTORS = {"dict": dict, "list": list, "tuple": tuple, "set": set, "float": float, "int": int, "str": str}


class _BaseNamespace(dict):
    """The merged `_base_` configs, readable as `_base_.model.backbone` inside a child config."""


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read an mmdetection config file (`.py`, or `.json`) into a plain dict, following `_base_` files.

    Raises:
        MMDetConfigError: the file is missing, not parseable, or uses a construct that would need running code.
    """
    return _load_file(Path(path), depth=0)


def parse_config_text(text: str, filename: str = "<config>", base_dir: Path | None = None) -> dict[str, Any]:
    """Parse config text (such as the dump stored in a checkpoint's meta) into a plain dict."""
    return _parse(text, filename, base_dir, depth=0)


def _load_file(path: Path, depth: int) -> dict[str, Any]:
    if depth > _MAX_BASE_DEPTH:
        raise MMDetConfigError(f"Config inheritance deeper than {_MAX_BASE_DEPTH} levels at {path}; is it circular?")
    if not path.is_file():
        raise MMDetConfigError(f"Config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise MMDetConfigError(f"Cannot read config file {path}: {error}") from error
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise MMDetConfigError(f"Config file {path} is not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise MMDetConfigError(f"Config file {path} must hold a JSON object, found {type(data).__name__}.")
        return _apply_bases(data, path.parent, str(path), depth)
    if path.suffix != ".py":
        raise MMDetConfigError(f"Unsupported config file type {path.suffix!r} ({path}); use a .py or .json config.")
    return _parse(text, str(path), path.parent, depth)


def _parse(text: str, filename: str, base_dir: Path | None, depth: int) -> dict[str, Any]:
    try:
        tree = ast.parse(text, filename=filename)
    except SyntaxError as error:
        raise MMDetConfigError(f"Config {filename} is not valid Python (line {error.lineno}): {error.msg}") from error

    base_files = _declared_bases(tree, filename)
    base = _BaseNamespace()
    for base_file in base_files:
        if base_dir is None:
            raise MMDetConfigError(
                f"Config {filename} inherits from {base_file!r} but has no folder to resolve it in; pass the config "
                "file itself with --config."
            )
        if "::" in base_file:
            raise MMDetConfigError(
                f"Config {filename} inherits from package config {base_file!r}, which needs mmdetection installed "
                "to resolve. Pass a resolved config instead (mmengine's `Config.fromfile(...).dump('resolved.py')`)."
            )
        base_config = _load_file((base_dir / base_file).resolve(), depth + 1)
        duplicates = set(base) & set(base_config)
        if duplicates:
            raise MMDetConfigError(f"Base configs of {filename} both define {sorted(duplicates)}.")
        base.update(base_config)

    # `{{_base_.a.b}}` is text substitution in mmengine; resolve it into a name our evaluator understands.
    references: dict[str, Any] = {}

    def substitute(match: re.Match[str]) -> str:
        placeholder = f"__base_reference_{len(references)}"
        references[placeholder] = _lookup_base(base, match[1], filename)
        return placeholder

    if _BASE_REFERENCE.search(text):
        text = _BASE_REFERENCE.sub(substitute, text)
        tree = ast.parse(text, filename=filename)

    evaluator = _Evaluator(filename, base, references)
    namespace: dict[str, Any] = {}
    for statement in tree.body:
        if _assigns_base(statement):
            continue  # the file list was read above; `_base_` below means the merged base configs
        evaluator.execute(statement, namespace)
    return _merge(namespace, dict(base))


def _apply_bases(data: dict[str, Any], base_dir: Path, filename: str, depth: int) -> dict[str, Any]:
    base_files = data.pop(BASE_KEY, [])
    base_files = [base_files] if isinstance(base_files, str) else list(base_files)
    merged: dict[str, Any] = {}
    for base_file in base_files:
        merged.update(_load_file((base_dir / base_file).resolve(), depth + 1))
    return _merge(data, merged)


def _assigns_base(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Assign) and any(
        isinstance(target, ast.Name) and target.id == BASE_KEY for target in statement.targets
    )


def _declared_bases(tree: ast.Module, filename: str) -> list[str]:
    for statement in tree.body:
        if _assigns_base(statement):
            value = _Evaluator(filename, _BaseNamespace(), {}).evaluate(statement.value, {})
            if isinstance(value, str):
                return [value]
            if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
                return list(value)
            raise MMDetConfigError(f"{filename}: _base_ must be a file name or a list of file names.")
    return []


def _lookup_base(base: dict[str, Any], dotted: str, filename: str) -> Any:
    value: Any = base
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise MMDetConfigError(f"{filename} refers to _base_.{dotted}, which its base configs do not define.")
        value = value[part]
    return copy.deepcopy(value)


def _merge(child: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """mmengine's `Config._merge_a_into_b`: dicts merge key by key unless the child says `_delete_=True`."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict):
            value = dict(value)
            delete = value.pop(DELETE_KEY, False)
            if key in merged and isinstance(merged[key], dict) and not delete:
                merged[key] = _merge(value, merged[key])
            else:
                merged[key] = _strip_delete_keys(value)
        else:
            merged[key] = value
    return merged


def _strip_delete_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _strip_delete_keys(item) for key, item in value.items() if key != DELETE_KEY}
    if isinstance(value, list):
        return [_strip_delete_keys(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_strip_delete_keys(item) for item in value)
    return value


class _Evaluator:
    """Evaluates the side-effect-free subset of Python that config files use."""

    def __init__(self, filename: str, base: dict[str, Any], references: dict[str, Any]) -> None:
        self.filename = filename
        self.base = base
        self.references = references

    def refuse(self, node: ast.AST, what: str) -> MMDetConfigError:
        line = getattr(node, "lineno", "?")
        return MMDetConfigError(
            f"{self.filename}, line {line}: {what} is not allowed in a config we read without executing it. "
            "Pass a plain config (dicts, lists and literals), for example one dumped with mmengine's Config.dump."
        )

    def execute(self, statement: ast.stmt, namespace: dict[str, Any]) -> None:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            return  # a docstring
        if isinstance(statement, ast.Assign):
            value = self.evaluate(statement.value, namespace)
            for target in statement.targets:
                self.assign(target, value, namespace)
            return
        if isinstance(statement, ast.AnnAssign) and statement.value is not None:
            self.assign(statement.target, self.evaluate(statement.value, namespace), namespace)
            return
        if isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
            operation = _BINARY_OPERATORS.get(type(statement.op))
            if operation is None or statement.target.id not in namespace:
                raise self.refuse(statement, "this augmented assignment")
            namespace[statement.target.id] = self._apply(
                statement, operation, namespace[statement.target.id], self.evaluate(statement.value, namespace)
            )
            return
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            raise self.refuse(statement, "an import")
        raise self.refuse(statement, f"a `{type(statement).__name__}` statement")

    def assign(self, target: ast.expr, value: Any, namespace: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            namespace[target.id] = value
            return
        if isinstance(target, (ast.Tuple, ast.List)):
            if not isinstance(value, (list, tuple)) or len(value) != len(target.elts):
                raise self.refuse(target, "unpacking a value of the wrong length")
            for element, item in zip(target.elts, value):
                self.assign(element, item, namespace)
            return
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            self._assign_into_base(target, value, namespace)
            return
        raise self.refuse(target, "assigning to anything but a name")

    def _assign_into_base(
        self, target: ast.Attribute | ast.Subscript, value: Any, namespace: dict[str, Any]
    ) -> None:
        # mmengine runs a config with `_base_` bound to the merged base configs, so `_base_.a[1].b = v` edits the
        # inherited value in place (mmdetection's multi-scale configs replace their base's train pipeline so).
        steps: list[Any] = []
        node: ast.expr = target
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            if isinstance(node, ast.Attribute):
                steps.insert(0, node.attr)
            else:
                steps.insert(0, self.evaluate(node.slice, namespace))
            node = node.value
        if not (isinstance(node, ast.Name) and node.id == BASE_KEY):
            raise self.refuse(target, "assigning to an attribute or item of anything but `_base_`")
        where = "_base_" + "".join(f".{step}" if isinstance(step, str) else f"[{step!r}]" for step in steps)
        container: Any = self.base
        try:
            for step in steps[:-1]:
                container = container[step]
            if isinstance(container, list):
                last = steps[-1]
                if not isinstance(last, int) or not -len(container) <= last < len(container):
                    raise IndexError(f"no item {last!r} in a list of {len(container)}")
            elif not isinstance(container, dict):
                raise TypeError(f"{type(container).__name__} is not a dict or list")
        except (KeyError, IndexError, TypeError) as error:
            what = f"assigning to `{where}`, which the base configs do not define ({error}),"
            raise self.refuse(target, what) from error
        container[steps[-1]] = copy.deepcopy(value)

    def evaluate(self, node: ast.expr, namespace: dict[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self._name(node, namespace)
        if isinstance(node, ast.Dict):
            result: dict[Any, Any] = {}
            for key, value in zip(node.keys, node.values):
                if key is None:
                    unpacked = self.evaluate(value, namespace)
                    if not isinstance(unpacked, dict):
                        raise self.refuse(node, "`**` of something that is not a dict")
                    result.update(copy.deepcopy(unpacked))
                else:
                    result[self.evaluate(key, namespace)] = self.evaluate(value, namespace)
            return result
        if isinstance(node, ast.List):
            return self._sequence(node.elts, namespace)
        if isinstance(node, ast.Tuple):
            return tuple(self._sequence(node.elts, namespace))
        if isinstance(node, ast.Set):
            return set(self._sequence(node.elts, namespace))
        if isinstance(node, ast.Call):
            return self._call(node, namespace)
        if isinstance(node, ast.BinOp):
            operation = _BINARY_OPERATORS.get(type(node.op))
            if operation is None:
                raise self.refuse(node, f"the operator {type(node.op).__name__}")
            return self._apply(node, operation, self.evaluate(node.left, namespace), self.evaluate(node.right, namespace))
        if isinstance(node, ast.UnaryOp):
            operation = _UNARY_OPERATORS.get(type(node.op))
            if operation is None:
                raise self.refuse(node, f"the operator {type(node.op).__name__}")
            return self._apply(node, operation, self.evaluate(node.operand, namespace))
        if isinstance(node, ast.Attribute):
            return self._attribute(node, namespace)
        if isinstance(node, ast.Subscript):
            container = self.evaluate(node.value, namespace)
            index = self.evaluate(node.slice, namespace)
            try:
                return copy.deepcopy(container[index])
            except (KeyError, IndexError, TypeError) as error:
                raise self.refuse(node, f"the subscript [{index!r}] ({error})") from error
        if isinstance(node, ast.Slice):
            parts = [None if part is None else self.evaluate(part, namespace) for part in (node.lower, node.upper, node.step)]
            return slice(*parts)
        if isinstance(node, ast.JoinedStr):
            raise self.refuse(node, "an f-string")
        raise self.refuse(node, f"a `{type(node).__name__}` expression")

    def _sequence(self, elements: list[ast.expr], namespace: dict[str, Any]) -> list[Any]:
        values: list[Any] = []
        for element in elements:
            if isinstance(element, ast.Starred):
                unpacked = self.evaluate(element.value, namespace)
                if not isinstance(unpacked, (list, tuple)):
                    raise self.refuse(element, "`*` of something that is not a list")
                values.extend(copy.deepcopy(list(unpacked)))
            else:
                values.append(self.evaluate(element, namespace))
        return values

    def _name(self, node: ast.Name, namespace: dict[str, Any]) -> Any:
        if node.id in namespace:
            return copy.deepcopy(namespace[node.id])
        if node.id in self.references:
            return copy.deepcopy(self.references[node.id])
        if node.id == BASE_KEY:
            return self.base
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        raise self.refuse(node, f"the undefined name `{node.id}`")

    def _attribute(self, node: ast.Attribute, namespace: dict[str, Any]) -> Any:
        owner = self.evaluate(node.value, namespace)
        if isinstance(owner, _BaseNamespace) or (isinstance(node.value, ast.Attribute) and isinstance(owner, dict)):
            if node.attr not in owner:
                raise self.refuse(node, f"the reference to `{node.attr}`, which the base configs do not define,")
            return copy.deepcopy(owner[node.attr])
        raise self.refuse(node, f"attribute access (`.{node.attr}`)")

    def _call(self, node: ast.Call, namespace: dict[str, Any]) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in _CONSTRUCTORS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise self.refuse(node, f"calling `{name}`")
        constructor = _CONSTRUCTORS[node.func.id]
        arguments = self._sequence(node.args, namespace)
        keywords: dict[str, Any] = {}
        for keyword in node.keywords:
            value = self.evaluate(keyword.value, namespace)
            if keyword.arg is None:
                if not isinstance(value, dict):
                    raise self.refuse(node, "`**` of something that is not a dict")
                keywords.update(value)
            else:
                keywords[keyword.arg] = value
        if constructor is dict:
            if len(arguments) > 1:
                raise self.refuse(node, "dict() with more than one positional argument")
            return dict(*arguments, **keywords)
        if keywords or len(arguments) > 1:
            raise self.refuse(node, f"{node.func.id}() with these arguments")
        try:
            return constructor(*arguments)
        except (TypeError, ValueError) as error:
            raise self.refuse(node, f"{node.func.id}({arguments[0] if arguments else ''!r}) ({error})") from error

    def _apply(self, node: ast.AST, operation: Any, *operands: Any) -> Any:
        allowed = (int, float, str, list, tuple, bool)
        if not all(isinstance(operand, allowed) for operand in operands):
            raise self.refuse(node, "arithmetic on these values")
        # Refuse huge repetitions ('a' * 10**9) that would exhaust memory.
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Pow)):
            if any(isinstance(operand, (str, list, tuple)) for operand in operands) and any(
                isinstance(operand, int) and operand > 10_000 for operand in operands
            ):
                raise self.refuse(node, "a repetition this large")
            if isinstance(node.op, ast.Pow) and any(isinstance(operand, int) and abs(operand) > 1000 for operand in operands):
                raise self.refuse(node, "a power this large")
        try:
            return operation(*operands)
        except (TypeError, ZeroDivisionError, OverflowError, ValueError) as error:
            raise self.refuse(node, f"this operation ({error})") from error
