"""Shared test configuration: hypothesis profiles (dev is quick and random; CI deeper and derandomized, so
a CI verdict is reproducible), and the opt-in for `slow` tests."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=120, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


# -- `slow` tests (floods, soaks) run only on request: --run-slow or TCPIP_SLOW=1 -----------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (or set TCPIP_SLOW=1)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow") or os.environ.get("TCPIP_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or TCPIP_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
