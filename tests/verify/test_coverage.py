"""Coverage rules COV-001..006: each triggered by a hand-built case, silent on a clean year."""

import polars as pl
import pytest

from energy_audit.synthetic import make_directory, make_returns
from energy_audit.verify.coverage import COVERAGE_RULES, check_coverage

YEAR = 2024


@pytest.fixture(scope="module")
def city():
    directory = make_directory(300, seed=31)
    returns, _ = make_returns(directory, [YEAR], seed=31, defects=False)
    return directory, returns


def _check(directory, returns):
    scope = directory.filter(pl.col("status") == "active")
    return check_coverage(returns, directory=directory, scope=scope, year=YEAR)


def _ids(findings, rule):
    return findings.filter(pl.col("rule_id") == rule)["institution_id"].to_list()


def test_clean_year_has_no_coverage_findings(city):
    findings, coverage = _check(*city)
    assert findings.is_empty()
    assert coverage.missing == 0 and coverage.unknown == 0
    assert coverage.submission_rate_pct == 100.0


def test_rules_are_coverage_rules():
    assert {r.category for r in COVERAGE_RULES} == {"coverage"}
    assert [r.rule_id for r in COVERAGE_RULES] == [f"COV-00{i}" for i in range(1, 7)]


def test_missing_return(city):
    directory, returns = city
    gone = returns["institution_id"][0]
    findings, coverage = _check(directory, returns.filter(pl.col("institution_id") != gone))
    assert _ids(findings, "COV-001") == [gone]
    assert coverage.missing == 1
    assert findings.filter(pl.col("rule_id") == "COV-001")["year"].to_list() == [YEAR]


def test_unknown_and_out_of_scope(city):
    directory, returns = city
    stranger = returns.head(1).with_columns(pl.lit("12120000MA05T1234X").alias("institution_id"))
    dissolved = directory.filter(pl.col("status") != "active")["institution_id"][0]
    ghost = returns.head(1).with_columns(pl.lit(dissolved).alias("institution_id"))
    findings, coverage = _check(directory, pl.concat([returns, stranger, ghost]))
    assert _ids(findings, "COV-002") == ["12120000MA05T1234X"]
    assert _ids(findings, "COV-003") == [dissolved]
    assert (coverage.unknown, coverage.out_of_scope) == (1, 1)


def test_duplicates_identical_and_conflicting(city):
    directory, returns = city
    same = returns.slice(3, 1)
    other = returns.slice(4, 1).with_columns(pl.col("electricity_kwh") + 1)
    findings, coverage = _check(directory, pl.concat([returns, same, other]))
    assert _ids(findings, "COV-004") == [returns["institution_id"][3]]
    conflict = findings.filter(pl.col("rule_id") == "COV-005")
    assert conflict["institution_id"].to_list() == [returns["institution_id"][4]] * 2
    assert "electricity_kwh" in conflict["message_en"][0]
    assert conflict["finding_id"].n_unique() == 2
    assert coverage.duplicated == 2


def test_name_differs_but_not_for_spacing(city):
    directory, returns = city
    renamed = returns.with_columns(
        pl.when(pl.int_range(pl.len()) == 5)
        .then(pl.lit("某某单位"))
        .otherwise("name")
        .alias("name"),
    ).with_columns(
        pl.when(pl.int_range(pl.len()) == 6)
        .then(pl.col("name").str.replace_all("", " ").str.strip_chars())
        .otherwise("name")
        .alias("name"),
    )
    findings, _ = _check(directory, renamed)
    assert _ids(findings, "COV-006") == [returns["institution_id"][5]]


def test_other_years_are_not_coverage_matters(city):
    directory, returns = city
    findings, _ = _check(
        directory,
        pl.concat([returns, returns.head(2).with_columns(pl.lit(2023, pl.Int64).alias("year"))]),
    )
    assert findings.is_empty()
