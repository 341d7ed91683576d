"""Fixtures shared by the co-simulation tests."""

import os

import pytest


@pytest.fixture(scope="session")
def cosim_cache(tmp_path_factory):
    """RTL and simulator builds shared by every test of the session, and by every pytest-xdist
    worker of the run (the cache is content-addressed and locks each entry while it is built, so
    workers share a build instead of compiling it twice).  Its path holds a space (issue 14: such
    a cache once broke the Verilator build), so every build of the session checks that paths
    with spaces work."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "cosim cache"
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp("cosim cache")
