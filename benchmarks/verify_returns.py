"""Verification time: ``verify`` on a synthetic city's returns with the previous year.

The city (directory, two years of returns with injected defects) is made in memory; the time
is that of ``verify(directory, returns, year, history=previous_year)``, best of the repeats,
twice: the rules only (coverage, validity, consistency; statistical stage off) and everything
(with the statistical stage, as the CLI runs it). Reading files is measured in read_returns.py;
the statistical methods one by one in detection.py.

    .venv/bin/python benchmarks/verify_returns.py                     # 10 thousand and 1 million
    .venv/bin/python benchmarks/verify_returns.py --sizes 10000 --repeats 5
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import polars as pl

from energy_audit.synthetic import make_directory, make_returns
from energy_audit.verify.run import verify
from energy_audit.verify.settings import VerifySettings

STAGES = {
    "rules": VerifySettings(
        statistical=dataclasses.replace(VerifySettings().statistical, enabled=False)
    ),
    "all": VerifySettings(),
}
"""Configurations timed: name → settings."""

YEAR = 2024


def measure(size: int, repeats: int) -> list[dict[str, float | str]]:
    directory = make_directory(size, seed=3)
    returns, _ = make_returns(directory, [YEAR - 1, YEAR], seed=3)
    current = returns.filter(pl.col("year") == YEAR)
    previous = returns.filter(pl.col("year") == YEAR - 1)
    rows: list[dict[str, float | str]] = []
    for stage, settings in STAGES.items():
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = verify(directory, current, YEAR, history=previous, settings=settings)
            best = min(best, time.perf_counter() - t0)
        rows.append(
            {
                "stage": stage,
                "returns": current.height,
                "seconds": best,
                "findings": result.findings.height,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"polars {pl.__version__}"
    )
    header = f"{'stage':>6} {'returns':>10} {'seconds':>8} {'returns/s':>10} {'findings':>9}"
    print(header)
    print("-" * len(header))
    for size in (int(s) for s in args.sizes.split(",")):
        for m in measure(size, args.repeats if size <= 100_000 else 1):
            n, seconds = float(m["returns"]), float(m["seconds"])
            print(
                f"{m['stage']:>6} {n:>10,.0f} {seconds:>8.2f} {n / seconds:>10,.0f} "
                f"{float(m['findings']):>9,.0f}"
            )


if __name__ == "__main__":
    main()
