"""Fixtures shared by the co-simulation tests."""

import pytest


@pytest.fixture(scope="session")
def cosim_cache(tmp_path_factory):
    """RTL and simulator builds shared by every test of the session.  Its path holds a space
    (issue 14: such a cache once broke the Verilator build), so every build of the session
    checks that paths with spaces work."""
    return tmp_path_factory.mktemp("cosim cache")
