"""The README's table of ``c.SharingHub`` traits says what the code does: every trait, no
other, with the environment variables each reads."""

from __future__ import annotations

import re
from pathlib import Path

from sharinghub_server.app import SharingHub

README = Path(__file__).resolve().parents[1] / "README.md"
HEADER = "| trait | default | environment | what |"


def _table() -> dict[str, str]:
    """trait -> its row's environment cell, from the rows under :data:`HEADER`."""
    lines = README.read_text().splitlines()
    rows: dict[str, str] = {}
    for line in lines[lines.index(HEADER) + 2:]:
        if not line.startswith("|"):
            break
        name, _default, environment, _what = (c.strip() for c in line.strip("|").split(" | "))
        rows[name.strip("`")] = environment
    return rows


def test_the_readme_lists_every_trait_with_its_environment_variables() -> None:
    table = _table()
    traits = SharingHub.class_own_traits(config=True)
    assert set(table) == set(traits)
    for name, trait in traits.items():
        read = set(re.findall(r"\b(?:SHARINGHUB|GITLAB)_[A-Z_]+", trait.help))
        assert set(re.findall(r"`([A-Z_]+)`", table[name])) == read, name
