"""The defect registry: every kind injects, shows in the returns, and is found by its rules."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from energy_audit import contract, read_returns
from energy_audit.catalogue import all_rules
from energy_audit.io.cells import NULL_TOKENS
from energy_audit.synthetic import (
    DEFAULT_DEFECT_RATES,
    DEFECT_KINDS,
    DEFECTS,
    NOISE_FAMILIES,
    RETURNS_COLUMNS,
    STATISTICAL_DEFECT_KINDS,
    make_directory,
    make_returns,
    write_returns_file,
)
from energy_audit.verify.run import verify
from energy_audit.verify.settings import StatisticalSettings, VerifySettings

SEED = 3
YEARS = range(2022, 2025)
RAISED = 0.03  # rate of the one kind a city carries [share of in-scope institution-years]
KEY = ["institution_id", "year"]
#: Rules only: the statistical stage is another engineer's (and slower).
RULES_ONLY = VerifySettings(statistical=StatisticalSettings(enabled=False))
INJECTED = tuple(k for k, d in DEFECTS.items() if d.inject is not None)


@pytest.fixture(scope="module")
def directory() -> pl.DataFrame:
    return make_directory(600, SEED)


def one_kind(
    directory: pl.DataFrame, kind: str, noise: str = "light"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A city whose returns carry only ``kind``, at a raised rate."""
    rates = {**dict.fromkeys(DEFECTS, 0.0), kind: RAISED}
    return make_returns(directory, YEARS, SEED, defects=rates, noise=noise)


def test_views_of_the_registry() -> None:
    assert list(DEFECT_KINDS) == list(DEFECTS) == list(DEFAULT_DEFECT_RATES)
    assert all(DEFECT_KINDS[k] == d.description for k, d in DEFECTS.items())
    assert all(DEFAULT_DEFECT_RATES[k] == d.rate for k, d in DEFECTS.items())
    assert tuple(k for k, d in DEFECTS.items() if d.statistical) == STATISTICAL_DEFECT_KINDS
    assert isinstance(STATISTICAL_DEFECT_KINDS, tuple)
    assert all(d.kind == k and 0 < d.rate < 0.05 for k, d in DEFECTS.items())
    rule_ids = {r.rule_id for r in all_rules()}
    for kind, defect in DEFECTS.items():
        assert defect.expected_rules, kind
        assert set(defect.expected_rules) <= rule_ids, kind
    assert [k for k, d in DEFECTS.items() if d.inject is None] == ["messy_cell"]


def long_values(returns: pl.DataFrame) -> pl.DataFrame:
    numeric = [c for c in RETURNS_COLUMNS if c not in ("institution_id", "year", "name")]
    return returns.with_columns(pl.col(numeric).cast(pl.Float64)).unpivot(
        numeric, index=KEY, variable_name="field", value_name="value"
    )


@pytest.mark.parametrize("noise", list(NOISE_FAMILIES))
@pytest.mark.parametrize("kind", INJECTED)
def test_every_kind_injects_and_its_reported_value_is_in_the_returns(
    directory: pl.DataFrame, kind: str, noise: str
) -> None:
    returns, truth = one_kind(directory, kind, noise)
    assert truth.height > 0
    assert set(truth["defect"]) == {kind}
    valued = truth.filter(pl.col("reported_value").is_not_null())
    if kind != "duplicate_conflicting":  # the second return's value: checked below
        found = valued.join(
            long_values(returns),
            left_on=[*KEY, "field", "reported_value"],
            right_on=[*KEY, "field", "value"],
            how="semi",
        )
        assert found.height == valued.height, valued.join(found, on=[*KEY, "field"], how="anti")
    else:
        second = valued.join(returns, on=KEY).filter(
            pl.col("electricity_kwh") == pl.col("reported_value")
        )
        assert second.height == valued.height
    if kind == "name_mismatch":
        seen = truth.join(
            returns, left_on=[*KEY, "reported_text"], right_on=[*KEY, "name"], how="semi"
        )
        assert seen.height == truth.height


@pytest.mark.parametrize("noise", list(NOISE_FAMILIES))
@pytest.mark.parametrize("kind", [k for k in INJECTED if not DEFECTS[k].statistical])
def test_every_rule_kind_is_found_by_its_rules(
    directory: pl.DataFrame, kind: str, noise: str
) -> None:
    """Rule-detected kinds, in every noise family (statistical kinds: not checked here, the
    statistical stage is measured by ``benchmarks/detection.py``)."""
    returns, truth = one_kind(directory, kind, noise)
    expected = DEFECTS[kind].expected_rules
    missed = []
    for year in YEARS:
        result = verify(
            directory,
            returns.filter(pl.col("year") == year),
            year,
            history=returns.filter(pl.col("year") < year),
            settings=RULES_ONLY,
        )
        found = result.findings.filter(pl.col("rule_id").is_in(expected)).select(KEY).unique()
        wanted = truth.filter(pl.col("year") == year).select(KEY).unique()
        missed.append(wanted.join(found, on=KEY, how="anti"))
    missed_all = pl.concat(missed)
    assert missed_all.is_empty(), (expected, missed_all)


def test_messy_cells_are_found_by_their_rules(directory: pl.DataFrame, tmp_path: Path) -> None:
    """The files' defect: a cell that cannot be read is quarantined (VAL-004), or, typed as a
    blank (—) in a required column, not reported (VAL-001)."""
    year = max(YEARS)
    returns, _ = make_returns(directory, [year], SEED, defects=False)
    path, messy = write_returns_file(returns, tmp_path / "r.xlsx", seed=SEED, messy_rate=0.02)
    assert messy.height > 0 and set(messy["defect"]) == {"messy_cell"}
    result = verify(directory, read_returns(path), year, settings=RULES_ONLY)
    found = set(result.findings.select("institution_id", "field", "rule_id").iter_rows())
    required = {c.name for c in contract.table("returns").columns if not c.nullable}
    lost = messy.filter(~pl.col("recoverable"))
    assert lost.height > 0
    for row in lost.iter_rows(named=True):
        blank = row["reported_text"].strip().lower() in NULL_TOKENS
        if blank and row["field"] not in required:
            continue  # an optional item left blank is not reported: no finding
        rule = "VAL-001" if blank else "VAL-004"
        assert rule in DEFECTS["messy_cell"].expected_rules
        assert (row["institution_id"], row["field"], rule) in found, row
