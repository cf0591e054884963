"""Verification time: ``verify`` on a synthetic city's returns with four years of history.

The city (directory, returns of the year and ``--history-years`` earlier years with injected
defects) is made in memory; the time is that of ``verify(directory, returns, year,
history=earlier_years)``, best of the repeats,
twice: the rules only (coverage, validity, consistency; statistical stage off) and everything
(with the statistical stage, as the CLI runs it). Reading files is measured in read_returns.py.
Below the table, the time of every stage and statistical method of the full run, from the
run's own clock (:attr:`energy_audit.verify.run.VerifyResult.timings`).

    .venv/bin/python benchmarks/verify_returns.py                     # 10 thousand and 1 million
    .venv/bin/python benchmarks/verify_returns.py --sizes 10000 --repeats 5
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

# isort: split
# energy_audit before polars, as the ``energy-audit`` command loads them: its allocator
# setting (energy_audit._allocator) is made before polars is loaded
import energy_audit  # noqa: F401

# isort: split
import polars as pl

from energy_audit._allocator import ALLOCATOR_ENV
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


def measure(
    size: int, repeats: int, history_years: int, methods: dict[str, float]
) -> list[dict[str, float | str]]:
    directory = make_directory(size, seed=3)
    returns, _ = make_returns(directory, range(YEAR - history_years, YEAR + 1), seed=3)
    current = returns.filter(pl.col("year") == YEAR)
    previous = returns.filter(pl.col("year") < YEAR)
    rows: list[dict[str, float | str]] = []
    for stage, settings in STAGES.items():
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = verify(directory, current, YEAR, history=previous, settings=settings)
            seconds = time.perf_counter() - t0
            if stage == "all" and seconds < best:
                methods.clear()
                methods.update(result.timings)
            best = min(best, seconds)
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
    parser.add_argument("--history-years", type=int, default=4)
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"polars {pl.__version__}, {ALLOCATOR_ENV}={os.environ.get(ALLOCATOR_ENV)}"
    )
    header = f"{'stage':>6} {'returns':>10} {'seconds':>8} {'returns/s':>10} {'findings':>9}"
    print(header)
    print("-" * len(header))
    timings = {}
    for size in (int(s) for s in args.sizes.split(",")):
        methods: dict[str, float] = {}
        timings[size] = methods
        repeats = args.repeats if size <= 100_000 else 1
        for m in measure(size, repeats, args.history_years, methods):
            n, seconds = float(m["returns"]), float(m["seconds"])
            print(
                f"{m['stage']:>6} {n:>10,.0f} {seconds:>8.2f} {n / seconds:>10,.0f} "
                f"{float(m['findings']):>9,.0f}"
            )

    print(f"\nverify by stage and statistical step ({args.history_years} years of history) [s]")
    print(f"{'step':>28} " + " ".join(f"{size:>10,}" for size in timings))
    steps = next(iter(timings.values())).keys()
    for step in steps:
        print(f"{step:>28} " + " ".join(f"{t.get(step, 0.0):>10.2f}" for t in timings.values()))


if __name__ == "__main__":
    main()
