"""One queue: rule findings ranked with the statistical evidence of their return."""

from __future__ import annotations

import math

import polars as pl
import pytest

from energy_audit.findings import Rule, findings_from_hits
from energy_audit.outliers.priority import priority_from_p
from energy_audit.verify.queue import ERROR_FLOOR, rank_queue

WARN = Rule("CON-003", "consistency", "warning", "总量不符", "total differs")
ERROR = Rule("VAL-002", "validity", "error", "负数", "negative")
INFO = Rule("CON-010", "consistency", "info", "提示", "note")
DIRECTORY = Rule("DIR-001", "directory", "error", "代码无效", "invalid code")
STAT = Rule("STA-004", "statistical", "warning", "模型", "model")


def _hits(rule: Rule, ids: list[str], year: int | None = 2023) -> pl.DataFrame:
    return findings_from_hits(
        rule,
        pl.DataFrame(
            {
                "institution_id": ids,
                "year": [year] * len(ids),
                "message_zh": ["…"] * len(ids),
                "message_en": ["…"] * len(ids),
            },
            schema_overrides={"year": pl.Int64},
        ),
    )


RETURNS = pl.DataFrame({"institution_id": [f"I{i:03d}" for i in range(99)], "year": 2023})


def _scores(p: dict[str, float]) -> pl.DataFrame:
    return RETURNS.with_columns(
        pl.col("institution_id").replace_strict(p, default=0.5, return_dtype=pl.Float64)
        .alias("p_combined")
    )  # fmt: skip


def _priority(queue: pl.DataFrame, rule_id: str, institution_id: str) -> float:
    return queue.filter(
        (pl.col("rule_id") == rule_id) & (pl.col("institution_id") == institution_id)
    )["priority"].item()


def test_a_common_warning_ranks_below_strong_statistical_evidence() -> None:
    # CON-003 fires on 29 of 99 returns (as rounding of totals does): rate 30 / 100
    common = [f"I{i:03d}" for i in range(29)]
    findings = pl.concat([_hits(WARN, common), _hits(STAT, ["I050"])])
    queue = rank_queue(findings, RETURNS, _scores({"I050": 1e-6}))
    assert _priority(queue, "STA-004", "I050") > _priority(queue, "CON-003", "I000")
    assert queue["rule_id"][0] == "STA-004"
    rule = queue.filter(pl.col("institution_id") == "I001").row(0, named=True)
    assert rule["evidence"]["method"] == "rule"
    assert rule["evidence"]["p"] == pytest.approx(30 / 100)
    assert rule["evidence"]["peer_size"] == 99
    # Cauchy of (0.3, 0.5): T = tan(0.2π) / 2, p = 1/2 − arctan(T)/π (hand computation)
    t = math.tan(0.2 * math.pi) / 2
    assert rule["evidence"]["return_p"] == pytest.approx(0.5 - math.atan(t) / math.pi)
    assert rule["priority"] == pytest.approx(float(priority_from_p(rule["evidence"]["return_p"])))


def test_a_rare_warning_outranks_a_common_one_and_shares_its_return_priority() -> None:
    rare = Rule("CON-001", "consistency", "warning", "面积变化", "area changed")
    common = [f"I{i:03d}" for i in range(29)]
    findings = pl.concat([_hits(WARN, common), _hits(rare, ["I050"]), _hits(STAT, ["I050"])])
    queue = rank_queue(findings, RETURNS, _scores({"I050": 0.04}))
    assert _priority(queue, "CON-001", "I050") > _priority(queue, "CON-003", "I000")
    # every finding of a return carries the return's priority
    assert _priority(queue, "CON-001", "I050") == _priority(queue, "STA-004", "I050")


def test_errors_come_first_and_are_ordered_by_the_evidence() -> None:
    findings = pl.concat([_hits(ERROR, ["I001", "I002"]), _hits(STAT, ["I003"])])
    queue = rank_queue(findings, RETURNS, _scores({"I002": 1e-8, "I003": 1e-12}))
    weak, strong = _priority(queue, "VAL-002", "I001"), _priority(queue, "VAL-002", "I002")
    assert ERROR_FLOOR <= weak < strong
    assert _priority(queue, "STA-004", "I003") < weak
    assert queue["institution_id"].to_list()[:2] == ["I002", "I001"]


def test_findings_not_about_a_return_keep_their_priority_and_nothing_is_lost() -> None:
    directory = _hits(DIRECTORY, ["I001"], year=None)
    member = _hits(WARN, ["I005"]).with_columns(
        pl.lit("B-1").alias("batch_id"), pl.lit(0.0).alias("priority")
    )
    info = _hits(INFO, ["I006"])
    findings = pl.concat([directory, member, info, _hits(STAT, ["I007"])])
    queue = rank_queue(findings, RETURNS, _scores({"I007": 1e-4}))
    assert queue.height == findings.height
    assert set(queue["finding_id"]) == set(findings["finding_id"])
    assert _priority(queue, "DIR-001", "I001") == 0.9
    assert _priority(queue, "CON-003", "I005") == 0.0
    # an info finding adds no evidence but is shown with its return
    assert _priority(queue, "CON-010", "I006") == pytest.approx(float(priority_from_p(0.5)))
    assert queue.schema == findings.schema


def test_the_top_of_a_queue_of_many_errors_does_not_tie() -> None:
    ids = [f"I{i:03d}" for i in range(40)]
    p = {i: 10.0 ** -(k % 9 + 1) for k, i in enumerate(ids)}
    findings = _hits(ERROR, ids)
    queue = rank_queue(findings, RETURNS, _scores(p))
    top = queue.head(10)["priority"]
    assert top.n_unique() > 1
