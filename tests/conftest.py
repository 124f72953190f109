"""Suite-wide isolation: what one test changes in process-wide state must not decide another's result."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _root_log_level_restored():
    """`assistant.cli.main`, called in-process by the CLI tests, runs `logging.basicConfig(force=True)`
    with its --log-level: left at ERROR, the root logger would hide the warnings a later test's
    caplog looks for (test_audio_sources after test_intents_cli failed that way)."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
