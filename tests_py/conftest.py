"""Fixtures shared by every Python test. Real servers are started by `servers.py` fixtures."""
from __future__ import annotations

import pytest

from helpers import free_port

pytest_plugins = ["servers"]


@pytest.fixture
def port() -> int:
    return free_port()
