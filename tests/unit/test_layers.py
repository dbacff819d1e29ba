"""The layers import downwards only: each package's ``__init__`` map says what it may import.

Every ``import`` anywhere in a module counts (top level, inside functions, under
``TYPE_CHECKING``), so a lazy import cannot hide an arrow that runs back up.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "facepipe"
LAYERS = ("media", "inference", "clustering", "distributed", "app")
#: layer -> the layers it may import (itself included)
ALLOWED = {
    "base": {"base"},
    "media": {"base", "media"},
    "inference": {"base", "media", "inference"},
    "clustering": {"base", "clustering"},
    "distributed": {"base", "media", "inference", "clustering", "distributed"},
    "app": {"base", "media", "inference", "clustering", "distributed", "app"},
}
#: the package's face (``import facepipe``, ``python -m facepipe``) hands on names from any layer
FACES = {"facepipe/__init__.py", "facepipe/__main__.py"}


def layer_of(module: str) -> str:
    """``facepipe.clustering.tracks`` -> ``clustering``; the base (``facepipe.errors``,
    ``facepipe.settings``, ``facepipe.records``, ``facepipe.__version__``) -> ``base``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "base"


def imports(path: Path) -> list[str]:
    """Every module ``path`` imports, as absolute dotted names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def modules() -> list[tuple[str, Path]]:
    return [
        (".".join(p.relative_to(ROOT).with_suffix("").parts), p)
        for p in sorted(PACKAGE.rglob("*.py"))
        if str(p.relative_to(ROOT)) not in FACES
    ]


def test_every_module_belongs_to_a_known_layer() -> None:
    assert {layer_of(name) for name, _ in modules()} == set(ALLOWED)


@pytest.mark.parametrize("name,path", modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_run_downwards_only(name: str, path: Path) -> None:
    layer = layer_of(name)
    wrong = [
        target
        for target in imports(path)
        if target.startswith("facepipe.") and layer_of(target) not in ALLOWED[layer]
    ]
    assert not wrong, f"{name} ({layer}) may import only {sorted(ALLOWED[layer])}, but imports {wrong}"


def test_the_library_never_reaches_up_into_the_tasks_and_knows_celery_in_one_place() -> None:
    for name, path in modules():
        found = imports(path)
        assert not [t for t in found if t == "tasks" or t.startswith("tasks.")], name
        if name != "facepipe.distributed.bridge":
            assert not [t for t in found if t == "celery" or t.startswith("celery.")], name


def test_each_package_has_a_map() -> None:
    for package in sorted(p for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE):
        if package.parent.name == "assets":
            continue
        doc = ast.get_docstring(ast.parse(package.read_text())) or ""
        assert ":mod:" in doc and "import" in doc, f"{package} says what is in it and what it may import"
