"""Verification time: ``verify`` on a synthetic city's returns with the previous year.

The city (directory, two years of returns with injected defects) is made in memory; the time
is that of ``verify(directory, returns, year, history=previous_year)`` — coverage, validity
and consistency — best of the repeats. Reading files is measured in read_returns.py.

    .venv/bin/python benchmarks/verify_returns.py                     # 10 thousand and 1 million
    .venv/bin/python benchmarks/verify_returns.py --sizes 10000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import polars as pl

from energy_audit.synthetic import make_directory, make_returns
from energy_audit.verify.run import verify

YEAR = 2024


def measure(size: int, repeats: int) -> dict[str, float]:
    directory = make_directory(size, seed=3)
    returns, _ = make_returns(directory, [YEAR - 1, YEAR], seed=3)
    current = returns.filter(pl.col("year") == YEAR)
    previous = returns.filter(pl.col("year") == YEAR - 1)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = verify(directory, current, YEAR, history=previous)
        best = min(best, time.perf_counter() - t0)
    return {"returns": current.height, "seconds": best, "findings": result.findings.height}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"polars {pl.__version__}"
    )
    header = f"{'returns':>10} {'seconds':>8} {'returns/s':>10} {'findings':>9}"
    print(header)
    print("-" * len(header))
    for size in (int(s) for s in args.sizes.split(",")):
        m = measure(size, args.repeats if size <= 100_000 else 1)
        print(
            f"{m['returns']:>10,} {m['seconds']:>8.2f} {m['returns'] / m['seconds']:>10,.0f} "
            f"{m['findings']:>9,}"
        )


if __name__ == "__main__":
    main()
