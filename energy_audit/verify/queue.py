"""The panel's queue: rule and statistical findings of a return ranked together.

Every finding about a return takes the priority of its return, and a return's priority comes
from all the evidence against it, calibrated the same way:

- the statistical stage's combined p-value of the return (every method, weighted Cauchy;
  :mod:`energy_audit.verify.statistical`);
- each rule that fired on the return (severity ``error`` or ``warning``, not folded into a
  batch), as a piece of evidence whose p-value is the rule's firing rate in the year,
  (k + 1) / (n + 1) for a rule firing on k of the year's n returns: a rule that fires on 3 %
  of the returns is as weak as a statistic that 3 % of the returns reach. A warning that fires
  on thousands of clean returns (a reported total off by its rounding, a real change of floor
  area) no longer outranks strong statistical evidence, and helps where it agrees with it.

The pieces are combined with the Cauchy combination test (Liu & Xie 2020; each p truncated at
0.5, equal weights: the statistical stage counts as one piece), giving the return's ``p``;
its priority is :func:`energy_audit.outliers.priority.priority_from_p` of it. A return with
an error (a figure that cannot be right) is reviewed before the rest: its priority is at least
``error_floor`` + (1 − ``error_floor``) × that (the errors ordered among themselves by the
same evidence). The ``evidence`` of every finding of a return records the return's combined
p-value (``return_p``); a rule finding's evidence records its rule's rate (method ``rule``,
``p``, ``peer_size`` = the year's returns).

Findings that are not about a return of the year keep their own priority: directory and
coverage findings of institutions without a return, batch findings and the digit test's
batches (STA-010); members of a batch keep priority 0.

References
----------
.. [1] Liu, Y. and Xie, J. (2020). Cauchy combination test. JASA 115(529), 393-402.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from energy_audit.findings import EVIDENCE_DTYPE, sort_findings
from energy_audit.outliers.priority import cauchy_combination_by, priority_from_p

__all__ = ["ERROR_FLOOR", "rank_queue"]

ERROR_FLOOR: Final = 0.9
"""Lowest priority of a return with an error finding [0-1] (the default priority of an error,
:data:`energy_audit.findings.DEFAULT_PRIORITY`)."""

_KEY: Final = ["institution_id", "year"]


def rank_queue(
    findings: pl.DataFrame,
    returns: pl.DataFrame,
    scores: pl.DataFrame | None = None,
    *,
    error_floor: float = ERROR_FLOOR,
) -> pl.DataFrame:
    """Give every finding about a return the priority of all the evidence against the return.

    Parameters
    ----------
    findings : polars.DataFrame
        Findings (data contract §5) of every stage, batches folded
        (:func:`energy_audit.verify.batches.fold_systemic`). Not changed.
    returns : polars.DataFrame
        The returns verified (``institution_id``, ``year``): the year's n returns of the
        rules' firing rates.
    scores : polars.DataFrame, optional
        The statistical stage's per-return table (``institution_id``, ``year``,
        ``p_combined``; :attr:`energy_audit.verify.statistical.StatisticalResult.scores`);
        None: the rules' evidence only.
    error_floor : float, default :data:`ERROR_FLOOR`
        Lowest priority of a return with an error finding.

    Returns
    -------
    polars.DataFrame
        ``findings`` with ``priority`` and ``evidence`` set as the module docstring says,
        highest priority first. Same rows.
    """
    keys = (
        returns.select(pl.col("institution_id").cast(pl.String), pl.col("year").cast(pl.Int64))
        .drop_nulls()
        .unique()
    )
    if findings.is_empty() or keys.is_empty():
        return findings
    n = keys.group_by("year").agg(pl.len().alias("_n"))
    about_return = (
        pl.col("batch_id").is_null()
        & pl.col("institution_id").is_not_null()
        & pl.col("year").is_not_null()
    )
    ruled = (
        findings.filter(
            about_return
            & (pl.col("category") != "statistical")
            & pl.col("severity").is_in(["error", "warning"])
        )
        .select("rule_id", "severity", *_KEY)
        .join(keys, on=_KEY, how="semi")
        .unique(["rule_id", *_KEY], maintain_order=True)
    )
    rates = (
        ruled.group_by("rule_id", "year")
        .agg(pl.len().alias("_k"))
        .join(n, on="year")
        .with_columns(
            ((pl.col("_k") + 1.0) / (pl.col("_n") + 1.0)).clip(upper_bound=1.0).alias("_rate")
        )
    )
    rule_units = ruled.join(rates, on=["rule_id", "year"]).select(*_KEY, pl.col("_rate").alias("p"))
    units = [rule_units]
    if scores is not None and not scores.is_empty():
        # only a return with a finding takes a priority: the others' scores are not combined
        found = findings.filter(about_return).select(*_KEY).unique()
        units.append(
            scores.select(
                pl.col("institution_id").cast(pl.String),
                pl.col("year").cast(pl.Int64),
                pl.col("p_combined").cast(pl.Float64).alias("p"),
            )
            .drop_nulls()
            .join(found, on=_KEY, how="semi")
            .group_by(_KEY)
            .agg(pl.col("p").min())
        )
    # sorted: the same sums in the same order on every run (byte-identical outputs)
    pieces = pl.concat(units).with_columns(pl.col("p").clip(upper_bound=0.5)).sort(*_KEY, "p")
    combined = cauchy_combination_by(pieces, "p", _KEY).select(
        *_KEY, pl.col("p_combined").alias("_return_p")
    )
    errors = ruled.filter(pl.col("severity") == "error").select(*_KEY).unique()
    p = combined["_return_p"].to_numpy()
    combined = combined.with_columns(
        pl.Series("_priority", priority_from_p(p), dtype=pl.Float64)
    ).join(errors.with_columns(pl.lit(True).alias("_error")), on=_KEY, how="left")
    combined = combined.with_columns(
        pl.when(pl.col("_error").fill_null(False))
        .then(
            pl.max_horizontal("_priority", error_floor + (1.0 - error_floor) * pl.col("_priority"))
        )
        .otherwise("_priority")
        .alias("_priority")
    )
    rule_evidence = pl.struct(
        pl.lit("rule").alias("method"),
        pl.col("_rate").alias("p"),
        pl.col("_n").cast(pl.Int64).alias("peer_size"),
        pl.col("_return_p").alias("return_p"),
    )
    out = findings.join(combined, on=_KEY, how="left", nulls_equal=False).join(
        rates.select("rule_id", "year", "_rate", "_n"), on=["rule_id", "year"], how="left"
    )
    ranked = pl.col("_priority").is_not_null() & about_return & (pl.col("rule_id") != "STA-010")
    evidence = (
        pl.when(ranked & pl.col("evidence").is_not_null())
        .then(pl.col("evidence").struct.with_fields(pl.col("_return_p").alias("return_p")))
        .when(ranked & pl.col("_rate").is_not_null())
        .then(rule_evidence)
        .otherwise(pl.col("evidence"))
    )
    out = out.with_columns(
        pl.when(ranked).then(pl.col("_priority")).otherwise(pl.col("priority")).alias("priority"),
        evidence.alias("evidence"),
    )
    # the findings' columns and dtypes; sort_findings gives the order (a total one)
    return sort_findings(
        out.select(
            pl.col(c).cast(EVIDENCE_DTYPE if c == "evidence" else t)
            for c, t in findings.schema.items()
        )
    )
