import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _in_test():
    "Mark the process as a test run, so notebooks and library code shrink their work."
    old = os.environ.get("IN_TEST")
    os.environ["IN_TEST"] = "1"
    yield
    if old is None: os.environ.pop("IN_TEST", None)
    else: os.environ["IN_TEST"] = old
