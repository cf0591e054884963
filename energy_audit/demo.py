"""The demonstration job: a synthetic city through every stage that exists.

:func:`run_demo` is what ``energy-audit demo`` runs, and a user can call it in Jupyter too. It
writes a synthetic Tianjin-like city (:mod:`energy_audit.synthetic`), reads the files back the way
the office reads what institutions send (xlsx with title rows, a GB18030 CSV in 万千瓦时), computes
the indicators and their ratio-of-sums aggregates, and writes everything with a manifest that
records the settings, the input files' SHA-256 and the coefficient / emission-factor rows used.
Later stages (verification, panel, evaluation, report) extend it.

Output folder::

    input/                     the synthetic city (directory, returns per year, truth table)
    directory/                 the quarterly directory run: store/ (snapshots + manifest), for
                               each quarter findings and change report; next quarter's workbook
    read/                      directory.parquet, returns.parquet, quarantine.parquet/.xlsx, notes
    verify/                    findings of the last year (coverage, validity, consistency,
                               statistics): findings.parquet, findings.xlsx (a sheet per
                               category), verify.json; evidence/ (charts of the statistical
                               findings of the returns of highest priority, index.csv)
    indicators/                institutions.parquet, by_district/sector/level/city .parquet,
                               indicators.xlsx (one sheet per grouping), factors_used.csv
    manifest.json
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from energy_audit import __version__
from energy_audit.directory.diff import PERSONAL_FIELDS, summarize_changes
from energy_audit.directory.maintenance import update_store
from energy_audit.districts import load_districts
from energy_audit.errors import Lang
from energy_audit.factors import factors_used
from energy_audit.indicators import aggregate, indicators
from energy_audit.io.readers import ReadResult, file_sha256, read_directory, read_returns
from energy_audit.io.writers import write_csv, write_excel
from energy_audit.panel.evidence import write_evidence
from energy_audit.progress import Progress, quiet
from energy_audit.synthetic import evolve_directory, write_city
from energy_audit.verify.run import verify, write_verification
from energy_audit.verify.settings import VerifySettings

DEMO_STAGES: tuple[str, ...] = (
    "synth_directory",
    "synth_returns",
    "synth_files",
    "read_directory",
    "read_returns",
    "directory_run",
    "verify",
    "evidence",
    "indicators",
)
"""Stages :func:`run_demo` reports to its ``progress`` callback, in order."""

GROUPINGS: dict[str, tuple[str, list[str] | None]] = {
    "district": ("分区", ["district_code"]),
    "sector": ("分类", ["sector"]),
    "level": ("分级", ["admin_level"]),
    "city": ("全市", None),
}
"""Aggregations written by the demo: name → (sheet name, grouping columns)."""


@dataclass(frozen=True)
class DemoSettings:
    """Settings of one demo run (serialisable: :meth:`to_dict`).

    Attributes
    ----------
    institutions : int
        Institutions in the synthetic directory.
    first_year, last_year : int
        Reporting years of the synthetic returns (inclusive).
    seed : int
        Random seed of the synthetic city.
    region_code : str
        Region whose emission factors apply (GB/T 2260; Tianjin 120000).
    evidence_returns : int
        Number of returns of highest priority whose statistical findings are drawn.
    """

    institutions: int = 2000
    first_year: int = 2020
    last_year: int = 2024
    seed: int = 2026
    region_code: str = "120000"
    evidence_returns: int = 10

    @property
    def years(self) -> list[int]:
        """Reporting years, in order."""
        return list(range(self.first_year, self.last_year + 1))

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` produced: the output folder, manifest and the main frames."""

    out_dir: Path
    manifest: dict[str, Any]
    returns: ReadResult
    directory: ReadResult
    city: pl.DataFrame


def _combine(results: list[ReadResult]) -> ReadResult:
    return ReadResult(
        data=pl.concat([r.data for r in results], how="vertical"),
        quarantine=pl.concat([r.quarantine for r in results], how="vertical"),
        notes=pl.concat([r.notes for r in results], how="vertical"),
        rows_in=sum(r.rows_in for r in results),
    )


def _directory_stage(out: Path, snapshot: Path, settings: DemoSettings) -> dict[str, Any]:
    """Store the year-end directory, then evolve it one quarter and run the update on that."""
    store = out / "store"
    if store.exists():
        shutil.rmtree(store)
    year_end = dt.date(settings.last_year, 12, 31)
    first = update_store(store, snapshot, year_end, out_dir=out / f"{year_end}")
    next_quarter, _ = evolve_directory(first.check.read.data, seed=settings.seed)
    next_date = dt.date(settings.last_year + 1, 3, 31)
    next_path = write_excel(
        {"名录库": next_quarter},
        out / f"directory_{next_date}.xlsx",
        title=f"公共机构名录库（{next_date}，合成数据）",
    )
    second = update_store(store, next_path, next_date, out_dir=out / f"{next_date}")
    return {
        str(year_end): {"stored": first.stored, "findings": first.check.counts},
        str(next_date): {
            "stored": second.stored,
            "findings": second.check.counts,
            "changes": summarize_changes(second.changes),
        },
    }


def run_demo(
    out_dir: str | Path,
    settings: DemoSettings | None = None,
    progress: Progress | None = None,
    *,
    lang: Lang = "zh",
) -> DemoResult:
    """Run the demonstration job on a synthetic city.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created; files of an earlier run are overwritten).
    settings : DemoSettings, optional
        Size, years and seed of the city (default :class:`DemoSettings`).
    progress : callable, optional
        :data:`energy_audit.progress.Progress`, called as ``progress(stage, done, total)``
        with the stages of :data:`DEMO_STAGES` (``read_returns`` counts the years read,
        ``synth_*`` and ``verify`` come from :func:`~energy_audit.synthetic.write_city` and
        :func:`~energy_audit.verify.run.verify`). Default: quiet (the CLI shows a progress bar).
    lang : {"zh", "en"}, default "zh"
        Language of the headers and coded values of the workbooks written (``findings.xlsx``,
        ``indicators.xlsx``, ``quarantine.xlsx``); Parquet files keep codes.

    Returns
    -------
    DemoResult
        Output folder, manifest, the returns and directory as read, and the city's indicators
        per year.
    """
    settings = settings or DemoSettings()
    report = progress or quiet
    out = Path(out_dir)
    (out / "read").mkdir(parents=True, exist_ok=True)
    (out / "indicators").mkdir(parents=True, exist_ok=True)

    paths = write_city(
        out / "input",
        settings.institutions,
        settings.years,
        settings.seed,
        defects=True,
        progress=report,
    )

    report("read_directory", 0, 1)
    directory = read_directory(paths["directory_xlsx"])
    # The first year arrives as a GB18030 CSV in 万千瓦时, the others as workbooks.
    inputs = [paths["directory_xlsx"]]
    results = []
    for year in settings.years:
        path = paths["returns_csv"][year] if year == settings.first_year else None
        path = path or paths["returns_xlsx"][year]
        report("read_returns", len(results), len(settings.years))
        results.append(read_returns(path, year=year))
        inputs.append(path)
    returns = _combine(results)
    returns.data.write_parquet(out / "read" / "returns.parquet")
    # contacts (personal data) stay in the directory store only
    directory.data.drop(PERSONAL_FIELDS, strict=False).write_parquet(
        out / "read" / "directory.parquet"
    )
    quarantine = pl.concat([directory.quarantine, returns.quarantine], how="vertical")
    quarantine.write_parquet(out / "read" / "quarantine.parquet")
    notes = pl.concat([directory.notes, returns.notes], how="vertical")
    notes.write_parquet(out / "read" / "notes.parquet")
    write_excel(
        {"隔离区": quarantine, "读取说明": notes}, out / "read" / "quarantine.xlsx", lang=lang
    )

    report("read_returns", len(results), len(settings.years))
    report("directory_run", 0, 2)
    directory_outcome = _directory_stage(out / "directory", paths["directory_xlsx"], settings)

    report("directory_run", 2, 2)
    verification = verify(
        directory,
        results[-1],
        settings.last_year,
        history=results[:-1],
        settings=VerifySettings(region_code=settings.region_code),
        progress=report,
    )
    write_verification(verification, out / "verify", inputs=inputs, lang=lang)
    report("evidence", 0, 0)
    evidence = write_evidence(
        verification.findings,
        verification.evidence_data(),
        out / "verify" / "evidence",
        returns=settings.evidence_returns,
    )

    report("indicators", 0, len(GROUPINGS))
    attributes = directory.data.select(
        "institution_id", "district_code", "sector", "admin_level"
    ).unique("institution_id", keep="first", maintain_order=True)
    per_institution = indicators(returns.data, region_code=settings.region_code).join(
        attributes, on="institution_id", how="left"
    )
    per_institution.write_parquet(out / "indicators" / "institutions.parquet")
    sheets = {}
    for name, (sheet, by) in GROUPINGS.items():
        frame = aggregate(per_institution, by=by, region_code=settings.region_code)
        if by == ["district_code"]:
            names = load_districts().select(
                "district_code", pl.col("name_zh").alias("district_name")
            )
            frame = frame.join(names, on="district_code", how="left").select(
                "year",
                "district_code",
                "district_name",
                pl.exclude("year", "district_code", "district_name"),
            )
        frame.write_parquet(out / "indicators" / f"by_{name}.parquet")
        sheets[sheet] = frame
        report("indicators", len(sheets), len(GROUPINGS))
    write_excel(
        sheets,
        out / "indicators" / "indicators.xlsx",
        title=f"公共机构能源资源消费指标（{settings.first_year}—{settings.last_year}年，合成数据）",
        lang=lang,
    )
    used = factors_used(settings.years, region_code=settings.region_code)
    # canonical headers: the record of the factor rows used, read back by programs
    write_csv(used, out / "indicators" / "factors_used.csv", translate_headers=False)

    manifest = {
        "job": "demo",
        "energy_audit_version": __version__,
        "settings": settings.to_dict(),
        "inputs": {str(p.relative_to(out)): file_sha256(p) for p in inputs},
        "coefficients": sorted(set(used["table_version"].to_list())),
        "directory": directory_outcome,
        "verify": {
            "year": settings.last_year,
            "coverage": verification.coverage.to_dict(),
            "findings": {f"{c}/{sev}": n for c, sev, n in verification.counts().iter_rows()},
            "evidence_charts": evidence["file"].drop_nulls().len(),
        },
        "rows": {
            "returns_rows_in": returns.rows_in,
            "returns_in_data": returns.data.height,
            "returns_whole_rows_quarantined": int(returns.quarantine["column"].is_null().sum()),
            "cells_quarantined": int(quarantine["column"].is_not_null().sum()),
            "directory_rows_in": directory.rows_in,
            "directory_in_data": directory.data.height,
        },
        "outputs": sorted(
            str(p.relative_to(out))
            for p in out.rglob("*")
            if p.is_file() and not p.is_relative_to(out / "input")
        ),
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return DemoResult(out, manifest, returns, directory, sheets["全市"])
