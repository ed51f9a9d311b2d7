"""The test tiers (conftest.SLOW_MODULES, pytest.ini's timeout) stay wired up."""

from __future__ import annotations

import configparser
from pathlib import Path

from conftest import SLOW_MODULES

HERE = Path(__file__).parent


def test_every_slow_module_exists():
    """A renamed test module must not silently leave the slow tier."""
    assert [m for m in sorted(SLOW_MODULES) if not (HERE / f"{m}.py").is_file()] == []


def test_pytest_ini_declares_the_marker_and_a_timeout():
    ini = configparser.ConfigParser()
    ini.read(HERE.parent / "pytest.ini")
    assert "slow:" in ini["pytest"]["markers"]
    assert int(ini["pytest"]["timeout"]) > 0
