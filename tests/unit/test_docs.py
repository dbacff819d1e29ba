"""The README documents every flag and environment variable the code has."""

from __future__ import annotations

from facepipe.settings import Settings
from tests.helpers import ROOT


def test_readme_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`--{name.replace('_', '-')}`" in readme, name
        assert f"`FACEPIPE_{name.upper()}`" in readme, name


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test.sh" in readme and "scripts/test.sh" in ci
