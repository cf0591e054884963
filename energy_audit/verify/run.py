"""``verify``: one call that checks a year's returns and hands the panel one findings table.

Coverage against the directory's scope of the year, validity against the data contract,
consistency between fields, years and the directory — each rule a stable id of the catalogue
(``docs/rules.md``) — and the statistical stage (:mod:`energy_audit.verify.statistical`: peer
scores, expected-consumption model, year-over-year change and unit slips, copies, round
numbers; on by default, ``settings.statistical`` switches it or single methods off). Findings
never stop the run. A rule that fires on most returns of one file or district is one fact: its
findings are folded into one batch finding (:mod:`energy_audit.verify.batches`), so it takes
one place in the panel's queue, not hundreds. The queue is one: every finding about a return
carries the priority of all the evidence against the return, its statistical p-value and the
firing rates of the rules that fired on it (:mod:`energy_audit.verify.queue`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from energy_audit import contract, glossary
from energy_audit.directory.history import DirectoryStore
from energy_audit.errors import Lang
from energy_audit.findings import CATEGORY_ZH
from energy_audit.io.readers import ReadResult, file_sha256
from energy_audit.io.writers import output_folder, write_excel
from energy_audit.progress import Progress, quiet
from energy_audit.verify.batches import batch_findings, fold_systemic
from energy_audit.verify.consistency import check_consistency
from energy_audit.verify.coverage import Coverage, check_coverage
from energy_audit.verify.queue import rank_queue
from energy_audit.verify.settings import VerifySettings
from energy_audit.verify.statistical import evidence_data, statistical_stage
from energy_audit.verify.validity import check_validity


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found.

    Attributes
    ----------
    findings : polars.DataFrame
        Every finding (data contract §5), highest priority first; systemic rule findings
        folded into batches (:meth:`batches`).
    coverage : Coverage
        Returns expected / received / missing / unknown.
    scope : polars.DataFrame
        The institutions that had to report for the year.
    settings : VerifySettings
        The thresholds used.
    year : int
        The year verified.
    returns : polars.DataFrame
        The returns verified, as read (all files together).
    history : polars.DataFrame or None
        The returns of earlier years given, as read.
    timings : dict of str to float
        Wall-clock time of each stage [s]: ``coverage``, ``validity``, ``consistency``,
        ``statistical`` (with its steps as ``statistical.<step>``,
        :attr:`energy_audit.verify.statistical.StatisticalResult.timings`), ``batches`` and
        ``queue``.
    """

    findings: pl.DataFrame
    coverage: Coverage
    scope: pl.DataFrame
    settings: VerifySettings
    year: int
    returns: pl.DataFrame
    history: pl.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def evidence_data(self) -> pl.DataFrame:
        """Return the figures behind the statistical findings, for the evidence charts.

        :func:`energy_audit.verify.statistical.evidence_data` of the returns and history
        verified, with the scope's directory columns (peer groups);
        :func:`energy_audit.panel.evidence.write_evidence` draws from it.
        """
        return evidence_data(
            self.returns, directory=self.scope, history=self.history, settings=self.settings
        )

    def batches(self) -> pl.DataFrame:
        """Return the batch findings (systemic rule findings folded into one), with ``members``.

        :func:`energy_audit.verify.batches.batch_findings` of :attr:`findings`.
        """
        return batch_findings(self.findings)

    def counts(self) -> pl.DataFrame:
        """Count findings by category and severity (category, severity, findings)."""
        return (
            self.findings.group_by("category", "severity")
            .agg(pl.len().alias("findings"))
            .sort("category", "severity")
        )


def _frames(
    source: pl.DataFrame | ReadResult | Sequence[pl.DataFrame | ReadResult] | None,
) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """Return data and quarantine of one or several reads (None when nothing was given).

    Each frame comes back in one chunk (:func:`_one_chunk`).
    """
    if source is None:
        return None, None
    items = [source] if isinstance(source, pl.DataFrame | ReadResult) else list(source)
    if not items:
        return None, None
    data = [i.data if isinstance(i, ReadResult) else i for i in items]
    quarantine = [i.quarantine for i in items if isinstance(i, ReadResult)]
    return (
        _one_chunk(pl.concat(data, how="diagonal_relaxed")),
        _one_chunk(pl.concat(quarantine)) if quarantine else None,
    )


def _one_chunk(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with every column in one chunk (no copy when it already is).

    Frames enter :func:`verify` in several chunks when read back from Parquet or concatenated
    from several files. polars 2.1 panics (``assertion failed: i < self.len()`` in its
    string functions, ``pl.format`` / ``concat_str``) on columns whose chunks do not line up
    after ``over`` and ``filter`` (COV-004's message); one chunk per column avoids it, and
    every stage then reads contiguous memory.
    """
    return frame.rechunk()


def verify(
    directory: pl.DataFrame | ReadResult | DirectoryStore,
    returns: pl.DataFrame | ReadResult | Sequence[pl.DataFrame | ReadResult],
    year: int,
    history: pl.DataFrame | ReadResult | Sequence[pl.DataFrame | ReadResult] | None = None,
    settings: VerifySettings | None = None,
    *,
    progress: Progress | None = None,
) -> VerifyResult:
    """Check the returns of ``year``: coverage, validity, consistency and statistics.

    Parameters
    ----------
    directory : polars.DataFrame, ReadResult or DirectoryStore
        A directory snapshot (its ``active`` institutions are the scope), or a store (the scope
        is every institution active at any time in ``year``).
    returns : polars.DataFrame, ReadResult or a sequence of them
        The returns as read; a ReadResult's quarantine becomes findings too.
    year : int
        The reporting year verified.
    history : polars.DataFrame, ReadResult or a sequence of them, optional
        Returns of earlier years (year-on-year rules).
    settings : VerifySettings, optional
        Thresholds (default :class:`VerifySettings`); ``settings.statistical.enabled`` and the
        per-method switches turn the statistical stage or single methods off.
    progress : callable, optional
        :data:`energy_audit.progress.Progress`, called with stage ``verify`` and the checks
        done of the checks to run (coverage, validity, consistency and, when enabled,
        statistics). Default: quiet.

    Returns
    -------
    VerifyResult
        Findings, highest priority first (one queue: :mod:`energy_audit.verify.queue`), and
        the coverage counts. Every finding about a return carries the return's priority,
        from its combined statistical p-value and the firing rates of the rules that fired
        on it (errors first); where a rule fires on at least ``settings.batch_share`` of a
        file's or district's returns (and on at least ``settings.batch_min_returns``), one
        batch finding at the rule's priority stands for them, and they stay in the table at
        priority 0 with its ``batch_id`` (:func:`energy_audit.verify.batches.fold_systemic`).
    """
    settings = settings or VerifySettings()
    report = progress or quiet
    steps = 4 if settings.statistical.enabled else 3
    report("verify", 0, steps)
    if isinstance(directory, DirectoryStore):
        scope = directory.scope(year)
        known = (
            directory.versions()
            .sort("valid_from")
            .unique("institution_id", keep="last", maintain_order=True)
        )
    else:
        known = directory.data if isinstance(directory, ReadResult) else directory
        scope = known.filter(pl.col("status").fill_null("active") == "active")
    known, scope = _one_chunk(known), _one_chunk(scope)
    data, quarantine = _frames(returns)
    if data is None:
        data = contract.table("returns").empty_frame()
    previous, _ = _frames(history)
    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[stage] = now - clock
        clock = now

    coverage_findings, coverage = check_coverage(data, directory=known, scope=scope, year=year)
    lap("coverage")
    report("verify", 1, steps)
    parts = [coverage_findings]
    parts.append(check_validity(data, year=year, quarantine=quarantine, settings=settings))
    lap("validity")
    report("verify", 2, steps)
    parts.append(check_consistency(data, directory=known, history=previous, settings=settings))
    lap("consistency")
    report("verify", 3, steps)
    scores = None
    if settings.statistical.enabled:
        stage = statistical_stage(data, directory=known, history=previous, settings=settings)
        parts.append(stage.findings)
        scores = stage.scores
        lap("statistical")
        times.update({f"statistical.{k}": v for k, v in stage.timings.items()})
        report("verify", 4, steps)
    findings = fold_systemic(pl.concat(parts, how="vertical"), data, known, settings)
    lap("batches")
    findings = rank_queue(findings, data, scores)
    lap("queue")
    return VerifyResult(findings, coverage, scope, settings, year, data, previous, times)


def write_verification(
    result: VerifyResult,
    out_dir: str | Path,
    inputs: Sequence[Path] = (),
    *,
    lang: Lang = "zh",
) -> Path:
    """Write ``findings.parquet``, ``findings.xlsx`` (a sheet per category) and ``verify.json``.

    Parameters
    ----------
    result : VerifyResult
        What :func:`verify` returned.
    out_dir : str or Path
        Output folder (created).
    inputs : sequence of Path
        Input files, recorded with their SHA-256 in ``verify.json``.
    lang : {"zh", "en"}, default "zh"
        Language of the workbook: sheet names, title, headers and coded values (category,
        severity…, through :func:`energy_audit.io.writers.write_excel`). The Parquet file keeps
        the codes and both messages.

    Returns
    -------
    pathlib.Path
        The folder written.

    Raises
    ------
    UnusableInputError
        If the folder cannot be created or a file cannot be written there (e.g. ``out_dir``
        names an existing file); the message names the path.
    """
    batches = result.batches()
    with output_folder(out_dir) as out:
        result.findings.write_parquet(out / "findings.parquet")
        sheets = {
            glossary.term("category", category, lang): result.findings.filter(
                pl.col("category") == category
            )
            for category in CATEGORY_ZH
            if (result.findings["category"] == category).any()
        }
        title = (
            f"Findings of the {result.year} public-institution energy and water returns "
            "(by priority)"
            if lang == "en"
            else f"{result.year}年公共机构能源资源消费数据核查发现（按优先级排序）"
        )
        write_excel(
            sheets or {"Findings" if lang == "en" else "核查发现": result.findings},
            out / "findings.xlsx",
            title=title,
            lang=lang,
        )
        record: dict[str, Any] = {
            "year": result.year,
            "coverage": result.coverage.to_dict(),
            "findings": {f"{c}/{s}": n for c, s, n in result.counts().iter_rows()},
            "batches": {
                "batches": batches.height,
                "findings_folded": int(batches["members"].sum()),
            },
            "settings": result.settings.to_dict(),
            "inputs": {str(p): file_sha256(p) for p in inputs},
        }
        (out / "verify.json").write_text(
            json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8"
        )
    return out
