"""``pip install .`` (what the compose image and users run) installs every package of facepipe."""

from __future__ import annotations

import pytest
from setuptools import find_namespace_packages

from tests.helpers import ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def test_every_package_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_namespace_packages(where=str(ROOT), include=config["packages"]["find"]["include"]))
    wanted = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for top in ("facepipe", "tasks")
        for path in (ROOT / top).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert wanted <= found, sorted(wanted - found)
    assert "facepipe.app.report.assets" in found  # the report's CSS and JS, as package data
    assert config["packages"]["find"]["namespaces"] is True
    assert not {name for name in found if name.startswith(("tests", "bench"))}
