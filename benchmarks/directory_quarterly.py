"""The quarterly directory run on a synthetic directory: time per step and per quarter.

A synthetic directory evolves quarter by quarter (adds, dissolutions, merges, renames, moves);
each quarter is written as an office workbook (title row, Chinese headers) and goes
through the run a script calls, ``energy-audit directory update``: read, check every rule,
diff against the store's latest snapshot, write findings and the change report, store.

    .venv/bin/python benchmarks/directory_quarterly.py                      # 10,000 × 4 quarters
    .venv/bin/python benchmarks/directory_quarterly.py --sizes 10000,100000 --quarters 8
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

import polars as pl

from energy_audit.directory.checks import check_directory
from energy_audit.directory.diff import diff_directories
from energy_audit.directory.history import DirectoryStore
from energy_audit.directory.maintenance import update_store
from energy_audit.io.readers import read_directory
from energy_audit.io.writers import write_excel
from energy_audit.synthetic import evolve_directory, make_directory

QUARTER_ENDS = ("03-31", "06-30", "09-30", "12-31")


def quarter_dates(n: int, first_year: int = 2024) -> list[dt.date]:
    return [dt.date.fromisoformat(f"{first_year + i // 4}-{QUARTER_ENDS[i % 4]}") for i in range(n)]


def run(size: int, quarters: int, folder: Path) -> list[dict[str, float]]:
    frame = make_directory(size, seed=1)
    paths = []
    for i, date in enumerate(quarter_dates(quarters)):
        if i:
            frame, _ = evolve_directory(frame, seed=i)
        paths.append(
            write_excel(
                {"名录库": frame},
                folder / f"directory_{date}.xlsx",
                title=f"天津市公共机构名录库（{date}）",
            )
        )
    store = folder / "store"
    rows = []
    for path, date in zip(paths, quarter_dates(quarters), strict=True):
        t0 = time.perf_counter()
        read = read_directory(path)
        t1 = time.perf_counter()
        check_directory(read)
        t2 = time.perf_counter()
        latest = DirectoryStore(store).latest() if (store / "manifest.json").exists() else None
        if latest is not None:
            diff_directories(latest, read.data)
        t3 = time.perf_counter()
        result = update_store(store, path, date)
        t4 = time.perf_counter()
        rows.append(
            {
                "quarter": str(date),
                "institutions": read.data.height,
                "read_s": t1 - t0,
                "check_s": t2 - t1,
                "diff_s": t3 - t2,
                "update_s": t4 - t3,
                "stored": result.stored,
                "changes": result.changes.height,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--quarters", type=int, default=4)
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"polars {pl.__version__}"
    )
    print("update = the whole run (read, check, diff, findings + change report, store)")
    header = (
        f"{'institutions':>12} {'quarter':>10} {'read s':>7} {'check s':>7} {'diff s':>7} "
        f"{'update s':>8} {'changes':>8} {'stored':>6}"
    )
    print(header)
    print("-" * len(header))
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            for r in run(size, args.quarters, Path(tmp)):
                print(
                    f"{r['institutions']:>12,} {r['quarter']:>10} {r['read_s']:>7.2f} "
                    f"{r['check_s']:>7.2f} {r['diff_s']:>7.2f} {r['update_s']:>8.2f} "
                    f"{r['changes']:>8,} {r['stored']!s:>6}"
                )


if __name__ == "__main__":
    main()
