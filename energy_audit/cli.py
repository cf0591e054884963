"""Command line: ``energy-audit``. Thin: parses arguments, calls the library, prints.

Exit codes (for scripts): 0 done; 1 unusable input (one clear message, no traceback);
2 usage error (wrong or missing arguments).
"""

from __future__ import annotations

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

app = typer.Typer(
    name="energy-audit",
    help="Verify public institutions' yearly energy and water returns (公共机构能源资源消费统计).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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
