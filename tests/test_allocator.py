"""The allocator setting energy_audit makes before polars loads (energy_audit._allocator)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from energy_audit._allocator import ALLOCATOR_CONF, ALLOCATOR_ENV

SHOW = f"import os; print(os.environ.get({ALLOCATOR_ENV!r}, ''))"


def _conf(code: str, given: str | None) -> str:
    """jemalloc's setting as polars passes it, in a fresh interpreter running ``code``."""
    env = {k: v for k, v in os.environ.items() if k != ALLOCATOR_ENV}
    if given is not None:
        env[ALLOCATOR_ENV] = given
    out = subprocess.run(
        [sys.executable, "-c", f"{code}; {SHOW}"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_freed_pages_are_kept_where_energy_audit_loads_first():
    conf = _conf("import energy_audit, polars", None)
    # polars puts its own default first and what it found after it: the later one wins
    assert conf.endswith("," + ALLOCATOR_CONF)
    assert conf.split(",")[0].startswith("dirty_decay_ms:")


@pytest.mark.parametrize("given", ["narenas:2", ""])
def test_a_setting_of_ones_own_is_kept(given):
    conf = _conf("import energy_audit, polars", given)
    assert ALLOCATOR_CONF not in conf
    assert conf.endswith(given)


def test_polars_loaded_first_keeps_its_own_default():
    assert ALLOCATOR_CONF not in _conf("import polars, energy_audit", None)
