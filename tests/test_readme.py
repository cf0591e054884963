"""The README's Python tour runs as written, and again (docs examples are tested)."""

import re
from pathlib import Path

import polars as pl

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    return blocks


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in _blocks():
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["returns"].data.height > 0
    assert set(namespace["aggregate"](namespace["with_district"])["year"]) == {2024}
    assert namespace["findings"].filter(pl.col("severity") == "error").is_empty()
    assert namespace["in_scope"].height > 0
    assert namespace["checked"].coverage.expected > 0


def test_readme_python_blocks_run_twice(tmp_path, monkeypatch):
    """A Jupyter user runs the cells again: each block runs a second time as written."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    blocks = _blocks()
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    first = namespace["in_scope"]
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["store"].snapshots().height == 1  # the same snapshot, stored once
    assert namespace["in_scope"].equals(first)
