"""Fixtures for the emulator tests; pytest only honours ``pytest_plugins`` in the top-level conftest."""

import pytest

from tests.emulator.helpers import sdk_client
from tests.support.emulator import emulator, emulator_factory  # noqa: F401


@pytest.fixture
def fresh(emulator):  # noqa: F811
    """The shared emulator, regenerated from its seed with an empty log."""
    emulator.reset()
    return emulator


@pytest.fixture
def client(fresh):
    """An SDK client for the freshly reset shared emulator, with retries off."""
    return sdk_client(fresh)
