"""Message templates and the one number format (energy_audit.messages)."""

from __future__ import annotations

import math

import polars as pl
import pytest

from energy_audit import contract
from energy_audit.findings import EVIDENCE_DTYPE, evidence_struct, findings_from_hits
from energy_audit.messages import number, p_value, render, template_fields
from energy_audit.verify.statistical import STATISTICAL_RULES

FINDING_COLUMNS = set(contract.table("findings").names)
EVIDENCE_FIELDS = set(EVIDENCE_DTYPE.to_schema())  # type: ignore[attr-defined]
DERIVED = {"ratio", "gap_tce"}
# names of a batch (STA-010) looked up from codes, not numbers: written by the check
BATCH_NAMES = {"batch_zh", "batch_en", "top_pairs"}


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (192476.99999999997, "192477"),  # history read back from 万 units
        (1234567.4, "1234567"),
        (12.5, "12.5"),
        (12.346, "12.35"),
        (-5.0, "-5"),
        (0.73, "0.73"),
        (0.1229, "0.1229"),
        (0.00007, "0.00007"),  # a slipped price
        (0.123456, "0.1235"),
        (None, "—"),
        (math.nan, "—"),
        (math.inf, "—"),
    ],
)
def test_number_format(x: float | None, text: str) -> None:
    frame = pl.DataFrame({"x": [x]}, schema={"x": pl.Float64})
    assert frame.select(number(pl.col("x"))).item() == text


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (3.2e-7, "3.2e-07"),
        (0.0499, "5.0e-02"),
        (9.96e-5, "1.0e-04"),  # the mantissa rounds up into the exponent
        (1.0, "1.0e+00"),
        (1e-300, "1.0e-300"),
        (0.0, "< 1e-300"),
        (None, "—"),
    ],
)
def test_p_value_format(p: float | None, text: str) -> None:
    frame = pl.DataFrame({"p": [p]}, schema={"p": pl.Float64})
    assert frame.select(p_value(pl.col("p"))).item() == text


def test_render_fills_evidence_fields_names_and_optional_clauses() -> None:
    evidence = evidence_struct(
        pl.Series(
            "evidence",
            [
                {"previous_value": 1000.0, "previous_year": 2022, "p": 1e-5},
                {"previous_value": None, "previous_year": None, "p": 0.02},
                {"previous_value": 0.0, "previous_year": 2022, "p": 0.5},
            ],
        )
    )
    frame = pl.DataFrame(
        {"field": ["electricity_kwh", "natural_gas_m3", "water_m3"], "value": [1e4, 5.0, 7.0]}
    )
    frame = frame.with_columns(evidence)
    template = (
        "{field:zh} {value} {field:unit}[，上年（{previous_year:int}）{previous_value}，"
        "之比 {ratio:ratio}，变化 {ratio:pct}%|，无上年数据]（p = {p:p}）"
    )
    out = frame.select(render(template, frame.schema)).to_series().to_list()
    assert out == [
        "电力 10000 kWh，上年（2022）1000，之比 10.0，变化 900.0%（p = 1.0e-05）",
        "天然气 5 m³，无上年数据（p = 2.0e-02）",
        "水 7 m³，无上年数据（p = 5.0e-01）",  # no ratio to 0: not "inf"
    ]


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown placeholder format"):
        render("{value:roman}")


def test_unknown_evidence_field_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"not in schemas/findings\.toml"):
        evidence_struct(pl.Series("evidence", [{"medain": 1.0}]))


@pytest.mark.parametrize("rule", STATISTICAL_RULES, ids=lambda r: r.rule_id)
def test_every_statistical_rule_has_templates_reading_only_the_finding(rule) -> None:
    assert rule.template_zh and rule.template_en
    allowed = FINDING_COLUMNS | EVIDENCE_FIELDS | DERIVED
    if rule.rule_id == "STA-010":
        allowed |= BATCH_NAMES
    for template in (rule.template_zh, rule.template_en):
        assert set(template_fields(template)) <= allowed, rule.rule_id
    # the same numbers in both languages
    assert template_fields(rule.template_zh) == template_fields(rule.template_en) or {
        *template_fields(rule.template_zh)
    } - {"batch_zh"} == {*template_fields(rule.template_en)} - {"batch_en"}


def test_slip_message_is_rendered_from_the_evidence() -> None:
    rule = next(r for r in STATISTICAL_RULES if r.rule_id == "STA-005")
    hits = pl.DataFrame(
        {
            "institution_id": ["X"],
            "year": [2023],
            "field": ["electricity_kwh"],
            "value": [12.3456],
            "suggested_value": [123456.0],
        }
    ).with_columns(
        pl.struct(
            pl.lit("slips").alias("method"),
            pl.lit(120000.0).alias("previous_value"),
            pl.lit(2022).alias("previous_year"),
            pl.lit(1e-4).alias("slip_factor"),
            pl.lit(0.1).alias("window_half_width"),
            pl.lit(3.4e-6).alias("p"),
        ).alias("evidence")
    )
    row = findings_from_hits(rule, hits).row(0, named=True)
    assert row["message_zh"] == (
        "电力 12.35，上年（2022）120000，之比 0.0001 在单位换算倍数 0.0001 的窗口内"
        "（±10.0%，按本年变化幅度确定），建议值 123456（校准 p = 3.4e-06）"
    )
    assert row["message_en"].startswith("electricity 12.35, last year (2022) 120000, ratio")
    assert row["evidence"]["slip_factor"] == 1e-4 and row["evidence"]["median"] is None
