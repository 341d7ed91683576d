"""Fixtures shared by the co-simulation tests."""

import pytest


@pytest.fixture(scope="session")
def cosim_cache(tmp_path_factory):
    """RTL and simulator builds shared by every test of the session."""
    return tmp_path_factory.mktemp("cosim_cache")
