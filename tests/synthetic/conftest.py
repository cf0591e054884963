"""Fixtures shared by the tests of the synthetic city."""

import polars as pl
import pytest

from energy_audit.synthetic import make_directory

SEED = 11


@pytest.fixture(scope="session")
def directory() -> pl.DataFrame:
    """A directory of 2,000 institutions (seed 11)."""
    return make_directory(2000, SEED)
