"""Rows per second of :func:`energy_audit.read_returns` on .xlsx, .csv and .parquet returns.

What is measured
----------------
For each size (default 10,000 and 1,000,000 rows) one year of returns of the synthetic city is
written three ways by :func:`energy_audit.synthetic.write_returns_file`, exactly as
:func:`~energy_audit.synthetic.write_city` writes a year:

- ``.xlsx``: a merged title row above the Chinese header row (``统一社会信用代码*``,
  ``统计年度*``, ``建筑面积(平方米)*``, ``电(千瓦时)*``, ``水(吨)`` …), numbers as numbers;
- ``.csv``: UTF-8 with BOM, Chinese headers with full-width brackets, numbers as text;
- ``.parquet``: the canonical columns.

The returns come from :func:`energy_audit.synthetic.make_directory` and
:func:`~energy_audit.synthetic.make_returns` (year 2024, default defects: duplicates, unknown
institutions, unit slips …). In the xlsx and CSV files a share of the numeric cells
(``DEFAULT_DEFECT_RATES["messy_cell"]``) is typed as text the way people type it (``1,234.5``,
``１２３４``, ``500 千瓦时``, ``—``, ``约3000``), so the cleaning and quarantine paths do real work;
both files of a size have the same messy cells (same seed).
Files are written once into ``--out`` (default ``benchmarks/out/``, git-ignored) and reused on
later runs; ``--regenerate`` rewrites them (do so after changing the generator).

Each (format, size) is read in a fresh Python process that imports ``energy_audit``, then
calls ``read_returns(path)`` ``--repeats`` times (default 3 up to 100,000 rows, else 1):

- ``seconds``: best wall time of one ``read_returns(path)`` call [s] (import time excluded);
- ``rows/s``: rows in the file ÷ ``seconds``;
- ``peak MB``: peak resident set size during the reads minus the resident set size after the
  imports [MB]. On Linux the child resets its peak (``/proc/self/clear_refs``) and reads
  ``VmHWM`` from ``/proc/self/status``; ``ru_maxrss`` is not used there because it survives
  ``execve`` and so starts at the parent's size. Elsewhere ``ru_maxrss`` is the fallback. RSS
  counts the Rust allocations of polars and fastexcel, which ``tracemalloc`` cannot see.

``file MB`` is the size of the file on disk [MB, 10^6 bytes].

How to run
----------
From the repository root::

    .venv/bin/python benchmarks/read_returns.py
    .venv/bin/python benchmarks/read_returns.py --sizes 10000 --repeats 5 --formats csv,parquet

Writing the 1,000,000-row xlsx file takes a few minutes the first time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl

FORMATS = ("xlsx", "csv", "parquet")
DEFAULT_SIZES = (10_000, 1_000_000)
DEFAULT_OUT = Path(__file__).resolve().parent / "out"
YEAR = 2024
SMALL_SIZE = 100_000  # sizes up to this many rows are read 3 times by default, larger ones once
# Directory institutions per return row asked for: make_returns gives about 0.97 rows per
# institution (scope, missing returns, duplicates); the surplus is sampled away.
INSTITUTIONS_PER_ROW = 1.06


# ------------------------------------------------------------------------------ input files


def _file_paths(out: Path, rows: int, seed: int) -> dict[str, Path]:
    return {fmt: out / f"returns_{YEAR}_{rows}rows_seed{seed}.{fmt}" for fmt in FORMATS}


def _make_frame(rows: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``rows`` returns of the synthetic city for :data:`YEAR` (generator order) and their truth."""
    from energy_audit.synthetic import make_directory, make_returns

    directory = make_directory(max(1000, round(rows * INSTITUTIONS_PER_ROW)), seed)
    returns, truth = make_returns(directory, years=[YEAR], seed=seed, defects=True)
    if returns.height < rows:
        raise RuntimeError(f"the synthetic city gave {returns.height} returns, fewer than {rows}")
    # A sample keeps duplicates and returns of unknown institutions (which follow the year) in
    # proportion; sorting by the row index keeps the generator's order.
    frame = returns.with_row_index("_i").sample(rows, seed=seed).sort("_i").drop("_i")
    return frame, truth


def ensure_files(
    out: Path, rows: int, seed: int, formats: Sequence[str], regenerate: bool
) -> dict[str, Path]:
    """Write the missing input files of one size; return the path of each format."""
    from energy_audit.synthetic import write_returns_file

    paths = {fmt: p for fmt, p in _file_paths(out, rows, seed).items() if fmt in formats}
    missing = [fmt for fmt, p in paths.items() if regenerate or not p.exists()]
    if not missing:
        return paths
    out.mkdir(parents=True, exist_ok=True)
    _log(f"generating {rows:,} returns (seed {seed}) for {', '.join(missing)} …")
    start = time.perf_counter()
    frame, truth = _make_frame(rows, seed)
    for fmt in missing:
        tmp = paths[fmt].with_name(f"partial_{paths[fmt].name}")  # a crash leaves no cache file
        write_returns_file(frame, tmp, seed=seed, year=YEAR, truth=truth)
        tmp.replace(paths[fmt])
        _log(f"  wrote {paths[fmt]} ({time.perf_counter() - start:.0f} s so far)")
    return paths


# ------------------------------------------------------------------------------- measurement


def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes; None if absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS (Linux ≥ 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_bytes("VmHWM") is not None


def _maxrss_bytes() -> int:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # Linux reports KiB


def child(path: Path, repeats: int) -> None:
    """Read ``path`` ``repeats`` times in this process; print the measurements as JSON.

    Peak RSS: on Linux ``VmHWM`` after resetting it, because ``ru_maxrss`` survives ``execve``
    and so starts at the parent's RSS (large once the parent has built a 1M-row frame).
    """
    import fastexcel  # noqa: F401  (imported by the reader on first use; keep out of the peak)

    from energy_audit import read_returns

    use_hwm = _reset_peak_rss()
    before = _status_bytes("VmRSS") if use_hwm else _maxrss_bytes()
    seconds = []
    result = None
    for _ in range(repeats):
        result = None  # let the previous result go before the next read
        start = time.perf_counter()
        result = read_returns(path)
        seconds.append(time.perf_counter() - start)
    assert result is not None and before is not None
    peak = _status_bytes("VmHWM") if use_hwm else _maxrss_bytes()
    record = {
        "seconds": seconds,
        "peak_bytes": (peak or 0) - before,
        "peak_source": "VmHWM" if use_hwm else "ru_maxrss",
        "rows_in": result.rows_in,
        "data_rows": result.data.height,
        "quarantine_rows": result.quarantine.height,
    }
    print(json.dumps(record))


def measure(path: Path, repeats: int) -> dict[str, object]:
    """Run :func:`child` in a fresh interpreter and return its record."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(path)]
    command += ["--repeats", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"reading {path.name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------- report


def machine() -> list[str]:
    import fastexcel

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"machine: {cpu}; {os.cpu_count()} cores ({usable} usable); {platform.platform()}",
        f"python {platform.python_version()}; polars {pl.__version__} "
        f"({pl.thread_pool_size()} threads); fastexcel {fastexcel.__version__}",
    ]


def table(rows: list[dict[str, object]]) -> str:
    headers = ("format", "rows", "file MB", "seconds", "rows/s", "peak MB")
    lines = [
        (
            str(r["format"]),
            f"{r['rows']:,}",
            f"{r['file_mb']:.1f}",
            f"{r['seconds']:.3f}",
            f"{r['rows_per_s']:,.0f}",
            f"{r['peak_mb']:,.0f}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    out = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    out.append("  ".join("-" * w for w in widths))
    for line in lines:
        out.append(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    return "\n".join(out)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _int_list(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def _formats(text: str) -> list[str]:
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(wanted) - set(FORMATS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown format(s) {unknown}; known: {list(FORMATS)}")
    return wanted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Rows per second of energy_audit.read_returns on xlsx, csv and parquet.",
    )
    parser.add_argument(
        "--sizes",
        type=_int_list,
        default=list(DEFAULT_SIZES),
        help="comma-separated numbers of rows (default 10000,1000000)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"reads per file, best one kept (default 3 up to {SMALL_SIZE:,} rows, else 1)",
    )
    parser.add_argument(
        "--formats",
        type=_formats,
        default=list(FORMATS),
        help="comma-separated formats (default xlsx,csv,parquet)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="cache folder of the input files"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic city")
    parser.add_argument(
        "--regenerate", action="store_true", help="rewrite the input files even if present"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        child(args.child, args.repeats or 1)
        return 0
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")

    from energy_audit.synthetic import XLSX_MAX_ROWS

    results = []
    for rows in args.sizes:
        formats = [f for f in args.formats if f != "xlsx" or rows + 2 <= XLSX_MAX_ROWS]
        if len(formats) < len(args.formats):
            _log(f"skipping xlsx at {rows:,} rows: a sheet holds {XLSX_MAX_ROWS:,} rows")
        paths = ensure_files(args.out, rows, args.seed, formats, args.regenerate)
        repeats = args.repeats or (3 if rows <= SMALL_SIZE else 1)
        for fmt, path in paths.items():
            _log(f"reading {path.name} ×{repeats} …")
            record = measure(path, repeats)
            if record["rows_in"] != rows:
                raise RuntimeError(f"{path.name}: read {record['rows_in']} rows, wrote {rows}")
            seconds = min(record["seconds"])
            results.append(
                {
                    "format": fmt,
                    "rows": rows,
                    "file_mb": path.stat().st_size / 1e6,
                    "seconds": seconds,
                    "rows_per_s": rows / seconds,
                    "peak_mb": record["peak_bytes"] / 1e6,
                }
            )
    print("\n".join(machine()))
    print(f"read_returns(path), best of the repeats; input: {args.out}")
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
