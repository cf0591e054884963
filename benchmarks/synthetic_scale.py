"""Synthetic city at scale: time and peak memory of make_directory + make_returns (+ indicators).

Each size runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its own.
National scale is about 1.6 million institutions (domain.md §3: ~158.6万 in 2020).

    .venv/bin/python benchmarks/synthetic_scale.py                  # 10k, 100k, 1.6M × 1 year
    .venv/bin/python benchmarks/synthetic_scale.py --sizes 10000 --years 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import polars as pl
from energy_audit.synthetic import make_directory, make_returns
from energy_audit import indicators
n, years = int(sys.argv[1]), int(sys.argv[2])
t0 = time.perf_counter()
d = make_directory(n, seed=1)
t1 = time.perf_counter()
r, truth = make_returns(d, list(range(2024 - years + 1, 2025)), seed=1)
t2 = time.perf_counter()
ind = indicators(r)
t3 = time.perf_counter()
print(json.dumps({"rows": r.height, "directory_s": t1 - t0, "returns_s": t2 - t1,
                  "indicators_s": t3 - t2,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1600000")
    parser.add_argument("--years", type=int, default=1)
    args = parser.parse_args()
    import polars as pl

    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"polars {pl.__version__}"
    )
    header = (
        f"{'institutions':>12} {'years':>5} {'returns':>10} {'directory s':>11} "
        f"{'returns s':>9} {'indicators s':>12} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(size), str(args.years)],
            check=True,
            capture_output=True,
            text=True,
        )
        m = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{size:>12,} {args.years:>5} {m['rows']:>10,} {m['directory_s']:>11.2f} "
            f"{m['returns_s']:>9.2f} {m['indicators_s']:>12.2f} {m['peak_mb']:>8.0f}"
        )


if __name__ == "__main__":
    main()
