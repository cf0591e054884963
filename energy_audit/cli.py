"""Command line: ``energy-audit``. Thin: parses arguments, calls the library, prints.

Exit codes (for scripts): 0 done; 1 unusable input (one clear message, no traceback);
2 usage error (wrong or missing arguments); 3 ``directory update`` refused the snapshot because
it has error findings (the store is unchanged). Personal data (contacts) is never printed.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from energy_audit.errors import EnergyAuditError

EXIT_OK = 0
EXIT_UNUSABLE_INPUT = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3

app = typer.Typer(
    name="energy-audit",
    help="Verify public institutions' yearly energy and water returns (公共机构能源资源消费统计).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
directory_app = typer.Typer(
    help="The institution directory (名录库): quarterly check, diff, update and history.",
    no_args_is_help=True,
)
app.add_typer(directory_app, name="directory")
console = Console()
errors = Console(stderr=True)


def _fail(exc: EnergyAuditError) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_UNUSABLE_INPUT)


def _years(text: str) -> list[int]:
    m = re.fullmatch(r"\s*(\d{4})\s*(?:[-–~]\s*(\d{4})\s*)?", text)
    if not m:
        raise typer.BadParameter(f"{text!r}: give a year (2024) or a range (2020-2024)")
    first = int(m.group(1))
    last = int(m.group(2) or first)
    if last < first:
        raise typer.BadParameter(f"{text!r}: the range ends before it starts")
    return list(range(first, last + 1))


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    institutions: Annotated[
        int, typer.Option("--institutions", min=1, help="Institutions in the directory.")
    ] = 2000,
    years: Annotated[str, typer.Option("--years", help="Years, e.g. 2020-2024.")] = "2020-2024",
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same files).")] = 1,
    clean: Annotated[
        bool, typer.Option("--clean", help="Inject no defects (a clean city).")
    ] = False,
    formats: Annotated[
        str, typer.Option("--formats", help="Comma-separated: xlsx,csv,parquet.")
    ] = "xlsx,csv,parquet",
) -> None:
    """Write a synthetic Tianjin-like city: directory, returns per year, truth table."""
    from energy_audit.synthetic import write_city

    year_list = _years(years)
    with console.status(f"writing {institutions:,} institutions × {len(year_list)} years…"):
        try:
            paths = write_city(
                out,
                institutions,
                year_list,
                seed,
                defects=not clean,
                formats=[f.strip() for f in formats.split(",") if f.strip()],
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        except EnergyAuditError as exc:
            raise _fail(exc) from None
    files = sorted(
        str(p) for v in paths.values() for p in (v.values() if isinstance(v, dict) else [v])
    )
    console.print(f"wrote {len(files)} files to {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo-out"),
    institutions: Annotated[int, typer.Option("--institutions", min=10)] = 2000,
    years: Annotated[str, typer.Option("--years")] = "2020-2024",
    seed: Annotated[int, typer.Option("--seed")] = 2026,
) -> None:
    """Make a synthetic city and run every stage that exists on it."""
    from energy_audit.demo import DemoSettings, run_demo

    year_list = _years(years)
    settings = DemoSettings(
        institutions=institutions, first_year=year_list[0], last_year=year_list[-1], seed=seed
    )
    try:
        with console.status("starting…") as status:
            result = run_demo(out, settings, progress=lambda step: status.update(step + "…"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    except EnergyAuditError as exc:
        raise _fail(exc) from None
    rows = result.manifest["rows"]
    console.print(
        f"returns: {rows['returns_rows_in']:,} rows read, {rows['returns_in_data']:,} in the data, "
        f"{rows['returns_whole_rows_quarantined']:,} whole rows and "
        f"{rows['cells_quarantined']:,} cells in quarantine"
    )
    for date, outcome in result.manifest["directory"].items():
        changes = outcome.get("changes")
        console.print(
            f"directory {date}: {'stored' if outcome['stored'] else 'not stored'}, "
            f"{outcome['findings']['error']} error / {outcome['findings']['warning']} warning "
            "findings"
            + (", changes: " + ", ".join(f"{k} {v}" for k, v in changes.items()) if changes else "")
        )
    checked = result.manifest["verify"]
    console.print(
        f"verify {checked['year']}: "
        + ", ".join(f"{k} {v:,}" for k, v in checked["coverage"].items() if isinstance(v, int))
        + "; findings "
        + ", ".join(f"{k} {v:,}" for k, v in checked["findings"].items())
    )
    table = Table(title="全市指标 — as reported, before verification (ratio of sums)")
    for header in ("year", "institutions", "tce", "kgce/person", "kgce/m²", "m³ water/person"):
        table.add_column(header, justify="right")
    for r in result.city.iter_rows(named=True):
        table.add_row(
            str(r["year"]),
            f"{r['institutions']:,}",
            f"{r['total_energy_tce']:,.2f}",
            f"{r['energy_per_capita_kgce']:.2f}",
            f"{r['energy_per_m2_kgce']:.2f}",
            f"{r['water_per_capita_m3']:.2f}",
        )
    console.print(table)
    console.print(f"outputs in {result.out_dir} (manifest.json lists them)")


@app.command()
def read(
    path: Annotated[Path, typer.Argument(help="An .xlsx, .csv or .parquet file.")],
    kind: Annotated[
        str, typer.Option("--kind", help="What the file holds: returns or directory.")
    ] = "returns",
    year: Annotated[
        int | None, typer.Option("--year", help="Year for a file without a year column.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write data/quarantine/notes .parquet into this folder."),
    ] = None,
) -> None:
    """Read a file into the canonical table and report what was converted or quarantined."""
    from energy_audit.io.readers import read_directory, read_returns

    if kind not in ("returns", "directory"):
        raise typer.BadParameter(f"{kind!r}: give returns or directory", param_hint="--kind")
    try:
        result = read_returns(path, year=year) if kind == "returns" else read_directory(path)
    except EnergyAuditError as exc:
        raise _fail(exc) from None
    console.print(repr(result), highlight=False)
    for note in result.notes.filter(pl.col("kind") != "absent_column").iter_rows(named=True):
        where = note["header"] or note["column"] or ""
        console.print(f"  {note['kind']}: {where} {note['detail']}", highlight=False)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        result.data.write_parquet(out / f"{kind}.parquet")
        result.quarantine.write_parquet(out / "quarantine.parquet")
        result.notes.write_parquet(out / "notes.parquet")
        console.print(f"wrote {kind}.parquet, quarantine.parquet, notes.parquet to {out}")


@app.command("verify")
def verify_command(
    directory: Annotated[
        Path,
        typer.Option("--directory", help="Directory snapshot file, or a directory store folder."),
    ],
    returns: Annotated[list[Path], typer.Option("--returns", help="Returns file(s) of the year.")],
    year: Annotated[int, typer.Option("--year", help="The reporting year verified.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    history: Annotated[
        list[Path] | None, typer.Option("--history", help="Returns file(s) of earlier years.")
    ] = None,
    settings_file: Annotated[
        Path | None,
        typer.Option("--settings", help="JSON file of thresholds overriding the defaults."),
    ] = None,
    evidence: Annotated[
        int,
        typer.Option(
            "--evidence",
            min=0,
            help="Draw the statistical findings of this many returns of highest priority "
            "to OUT/evidence (0: none).",
        ),
    ] = 20,
) -> None:
    """Verify a year's returns: coverage, validity, consistency, statistics → findings.

    Writes OUT/findings.parquet, OUT/findings.xlsx (a sheet per category, by priority),
    OUT/verify.json and the evidence charts of the top statistical findings (OUT/evidence/*.png
    with index.csv). Findings never fail the run: exit 0 with findings, 1 for unusable input.
    """
    from energy_audit.directory.history import DirectoryStore
    from energy_audit.io.readers import read_directory, read_returns
    from energy_audit.panel.evidence import write_evidence
    from energy_audit.verify.run import verify, write_verification
    from energy_audit.verify.settings import VerifySettings

    try:
        settings = VerifySettings.from_json(settings_file) if settings_file else None
        with console.status("reading…"):
            source = DirectoryStore(directory) if directory.is_dir() else read_directory(directory)
            read = [read_returns(p, year=year) for p in returns]
            previous = [read_returns(p) for p in history or []]
        with console.status("verifying…"):
            result = verify(source, read, year, history=previous, settings=settings)
        write_verification(result, out, inputs=[*returns, *(history or [])])
        drawn = None
        if evidence:
            with console.status("drawing evidence…"):
                drawn = write_evidence(
                    result.findings, result.evidence_data(), out / "evidence", returns=evidence
                )
    except EnergyAuditError as exc:
        raise _fail(exc) from None
    c = result.coverage
    console.print(
        f"{year}: returns expected {c.expected:,}, received {c.received:,}, missing "
        f"{c.missing:,}, unknown {c.unknown:,}, out of scope {c.out_of_scope:,}, duplicated "
        f"{c.duplicated:,}"
    )
    table = Table(title="findings by category and severity")
    for header in ("category", "severity", "findings"):
        table.add_column(header)
    for category, severity, n in result.counts().iter_rows():
        table.add_row(category, severity, f"{n:,}")
    console.print(table)
    console.print(f"wrote findings.parquet, findings.xlsx and verify.json to {out}")
    if drawn is not None:
        console.print(
            f"drew {drawn['file'].drop_nulls().len():,} evidence chart(s) of "
            f"{drawn['rank'].n_unique():,} return(s) to {out / 'evidence'}"
            + (
                f" ({drawn['file'].null_count():,} could not be drawn: see index.csv)"
                if drawn["file"].null_count()
                else ""
            )
        )


@app.command()
def rules(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of printing.")
    ] = None,
) -> None:
    """Print the rule catalogue (ids, categories, severities, settings) as Markdown."""
    from energy_audit.catalogue import render_rules_markdown

    text = render_rules_markdown()
    if out is None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    else:
        out.write_text(text, encoding="utf-8")


@app.command()
def contract(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of printing.")
    ] = None,
) -> None:
    """Print the data contract (tables, columns, Chinese headers, units) as Markdown."""
    from energy_audit.contract import render_markdown

    try:
        text = render_markdown()
    except EnergyAuditError as exc:
        raise _fail(exc) from None
    if out is None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    else:
        out.write_text(text, encoding="utf-8")


def _print_findings_summary(findings: pl.DataFrame) -> None:
    if findings.is_empty():
        console.print("no findings")
        return
    table = Table(title="findings by rule")
    for header in ("rule", "severity", "count", "example"):
        table.add_column(header)
    summary = (
        findings.group_by("rule_id", "severity")
        .agg(pl.len().alias("n"), pl.col("message_zh").first().alias("example"))
        .sort("rule_id")
    )
    for r in summary.iter_rows(named=True):
        table.add_row(r["rule_id"], r["severity"], f"{r['n']:,}", r["example"])
    console.print(table)


def _print_changes_summary(changes: pl.DataFrame) -> None:
    from energy_audit.directory.diff import CHANGE_KINDS, summarize_changes

    counts = summarize_changes(changes)
    console.print(
        "changes (institutions): "
        + ", ".join(f"{kind} {counts.get(kind, 0):,}" for kind in CHANGE_KINDS)
    )


@directory_app.command("check")
def directory_check(
    path: Annotated[Path, typer.Argument(help="Directory snapshot (.xlsx, .csv, .parquet).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write findings.parquet and findings.xlsx here.")
    ] = None,
) -> None:
    """Check a directory snapshot: codes, duplicates, values, hierarchy, merges."""
    from energy_audit.directory.maintenance import check_file

    try:
        result = check_file(path, out)
    except EnergyAuditError as exc:
        raise _fail(exc) from None
    console.print(repr(result.read), highlight=False)
    _print_findings_summary(result.findings)
    if out is not None:
        console.print(f"wrote findings.parquet and findings.xlsx to {out}")


@directory_app.command("diff")
def directory_diff(
    old: Annotated[Path, typer.Argument(help="The earlier snapshot.")],
    new: Annotated[Path, typer.Argument(help="The later snapshot.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write changes.parquet and changes.xlsx here.")
    ] = None,
) -> None:
    """Compare two snapshots: added, dissolved, merged, renamed, changed, removed."""
    from energy_audit.directory.maintenance import diff_files

    try:
        changes = diff_files(old, new, out)
    except EnergyAuditError as exc:
        raise _fail(exc) from None
    _print_changes_summary(changes)
    if out is not None:
        console.print(f"wrote changes.parquet and changes.xlsx to {out}")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give a date as YYYY-MM-DD") from None


@directory_app.command("update")
def directory_update(
    path: Annotated[Path, typer.Argument(help="The new snapshot file.")],
    store: Annotated[Path, typer.Option("--store", help="The directory store folder.")],
    as_of: Annotated[str, typer.Option("--as-of", help="Date of the snapshot, YYYY-MM-DD.")],
    accept_errors: Annotated[
        bool, typer.Option("--accept-errors", help="Store even with error findings.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why errors are accepted (required).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for findings and change report (default: in store)."),
    ] = None,
) -> None:
    """Check a snapshot, diff it against the store's latest, and store it when it has no errors.

    Exit 0 stored; 3 refused because of error findings (store unchanged); 1 unusable input.
    """
    from energy_audit.directory.maintenance import update_store

    date = _date(as_of)
    if accept_errors and not (reason and reason.strip()):
        raise typer.BadParameter("--accept-errors needs --reason", param_hint="--reason")
    try:
        result = update_store(
            store, path, date, accept_errors=accept_errors, reason=reason, out_dir=out
        )
    except EnergyAuditError as exc:
        raise _fail(exc) from None
    _print_findings_summary(result.check.findings)
    _print_changes_summary(result.changes)
    console.print(f"findings and change report in {result.out_dir}")
    if not result.stored:
        errors.print(
            f"[bold red]not stored:[/] {result.check.counts['error']:,} error finding(s); fix "
            "the file or pass --accept-errors --reason",
            highlight=False,
        )
        raise typer.Exit(EXIT_BLOCKED)
    note = " (errors accepted)" if result.snapshot and result.snapshot.accepted_with_errors else ""
    console.print(f"stored the snapshot of {date} in {store}{note}")


@directory_app.command("history")
def directory_history(
    institution_id: Annotated[str, typer.Argument(help="Unified social credit code.")],
    store: Annotated[Path, typer.Option("--store", help="The directory store folder.")],
) -> None:
    """Show the versions of one institution (contacts are not shown)."""
    from energy_audit.directory.history import DirectoryStore

    try:
        versions = DirectoryStore(store).history(institution_id)
    except EnergyAuditError as exc:
        raise _fail(exc) from None
    if versions.is_empty():
        raise _fail(EnergyAuditError(f"{store}: no institution {institution_id} in the store"))
    table = Table(title=f"history of {institution_id}")
    shown = (
        "valid_from",
        "valid_to",
        "changes",
        "name",
        "district_code",
        "admin_level",
        "parent_id",
        "status",
    )
    for header in shown:
        if header.startswith("valid_"):
            table.add_column(header, no_wrap=True, min_width=10)
        else:
            table.add_column(header, overflow="fold")
    for r in versions.iter_rows(named=True):
        table.add_row(
            *(
                ", ".join(r[c]) if isinstance(r[c], list) else ("" if r[c] is None else str(r[c]))
                for c in shown
            )
        )
    console.print(table)
