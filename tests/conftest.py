"""Suite-wide settings: isolation between tests, and the hypothesis profiles of the fuzz tests.

Hypothesis profiles (tests/test_fuzz.py):

    pytest tests/test_fuzz.py                              # "default": small, derandomized, part of the suite
    pytest tests/test_fuzz.py --hypothesis-profile=long    # thousands of inputs per target, random seed
    pytest tests/test_fuzz.py --hypothesis-profile=long --hypothesis-show-statistics   # inputs tried per target

The 2 s deadline is the property "never more than 2 s per input" (parsers and matchers must stay
bounded on hostile input); the default profile is derandomized so the suite is deterministic.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=100,
    deadline=timedelta(seconds=2),
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.register_profile(
    "long",
    max_examples=2000,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.load_profile("default")


@pytest.fixture(scope="session", autouse=True)
def _assistant_home(tmp_path_factory):
    """Every test's data, caches and state go to a folder of this run, never to the user's
    ~/.cache/assistant or ~/.local/share/assistant (a reply cached there by one run was read
    back by a later test that meant to have no cache). Tests that need a folder of their own
    still set ASSISTANT_HOME themselves."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ASSISTANT_HOME", str(tmp_path_factory.mktemp("assistant-home")))
        yield


@pytest.fixture(autouse=True)
def _root_log_level_restored():
    """`assistant.cli.main`, called in-process by the CLI tests, runs `logging.basicConfig(force=True)`
    with its --log-level: left at ERROR, the root logger would hide the warnings a later test's
    caplog looks for (test_audio_sources after test_intents_cli failed that way)."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
