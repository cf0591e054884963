"""The findings table: contract columns, stable ids, default priorities."""

import polars as pl

from energy_audit import contract
from energy_audit.findings import Rule, finding_id, finding_ids, findings_from_hits, sort_findings

RULE = Rule("TST-001", "validity", "warning", "测试", "test")


def test_finding_ids_are_stable_and_distinct():
    a = finding_id("TST-001", "11100000000013338W", 2023, "electricity_kwh", "")
    assert a == finding_id("TST-001", "11100000000013338W", 2023, "electricity_kwh", "")
    assert a.startswith("TST-001-") and len(a) == len("TST-001-") + 12
    others = {
        finding_id("TST-002", "11100000000013338W", 2023, "electricity_kwh", ""),
        finding_id("TST-001", "12100000000018032A", 2023, "electricity_kwh", ""),
        finding_id("TST-001", "11100000000013338W", 2024, "electricity_kwh", ""),
        finding_id("TST-001", "11100000000013338W", 2023, "water_m3", ""),
        finding_id("TST-001", "11100000000013338W", 2023, "electricity_kwh", "row 7"),
    }
    assert a not in others and len(others) == 5


def test_finding_ids_of_a_frame_are_those_of_each_row():
    hits = pl.DataFrame(
        {
            "institution_id": ["11100000000013338W", None, "单位"],
            "year": [2023, None, 2024],
            "field": ["electricity_kwh", None, "water_m3"],
            "key": [1.5, None, 7.0],  # not text: Python's str of the value, as finding_id's
        }
    )
    expected = [
        finding_id("TST-001", inst, year, fld, "" if key is None else str(key))
        for inst, year, fld, key in hits.iter_rows()
    ]
    assert finding_ids("TST-001", hits).to_list() == expected


def test_findings_from_hits_fills_the_contract_columns():
    hits = pl.DataFrame(
        {
            "institution_id": ["11100000000013338W", "12100000000018032A"],
            "year": [2023, 2023],
            "field": ["electricity_kwh", None],
            "value": [5.0, None],
            "message_zh": ["甲", "乙"],
            "message_en": ["a", "b"],
        }
    )
    out = findings_from_hits(RULE, hits)
    assert out.schema == contract.table("findings").polars_schema
    assert out["priority"].to_list() == [0.5, 0.5]
    assert out["category"].unique().to_list() == ["validity"]
    assert out["finding_id"].n_unique() == 2
    assert findings_from_hits(RULE, hits, priority=0.7)["priority"].to_list() == [0.7, 0.7]


def test_sort_by_priority_first():
    hits = pl.DataFrame(
        {
            "institution_id": ["b", "a"],
            "priority": [0.2, 0.8],
            "message_zh": ["", ""],
            "message_en": ["", ""],
        }
    )
    assert sort_findings(findings_from_hits(RULE, hits))["institution_id"].to_list() == ["a", "b"]
