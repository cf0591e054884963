"""Time of each generic outlier function at the sizes the statistical stage calls it with.

The city (directory, returns of the year and ``--history-years`` earlier years) is made in
memory as in ``verify_returns.py``; the inputs are built as ``energy_audit.verify.statistical``
builds them (indicators, occupancy density, the directory's peer and predictor columns), and
each function of :mod:`energy_audit.outliers` and :mod:`energy_audit.indicators` is timed on
its own, best of the repeats, one line per call: ``verify_returns.py`` gives the stage as a
whole, this script the functions inside it.

    .venv/bin/python benchmarks/profile_statistical.py                    # 1 million returns
    .venv/bin/python benchmarks/profile_statistical.py --sizes 10000,100000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import polars as pl

from energy_audit.factors import ITEM_COLUMNS
from energy_audit.indicators import indicators
from energy_audit.outliers.calibration import tail_p
from energy_audit.outliers.copies import copied_figures, identical_within_groups, round_numbers
from energy_audit.outliers.peer import robust_peer_scores
from energy_audit.outliers.priority import cauchy_combination_by
from energy_audit.outliers.regression import expected_consumption
from energy_audit.outliers.yoy import (
    earlier_returns,
    year_over_year_by_column,
    year_over_year_long,
)
from energy_audit.slips import slip_factors_for
from energy_audit.synthetic import make_directory, make_returns
from energy_audit.verify.settings import StatisticalSettings

YEAR = 2024
KEY = ["institution_id", "year"]
QUANTITIES = [*ITEM_COLUMNS.values(), "water_m3"]
COSTS = ["electricity_cost_yuan", "natural_gas_cost_yuan", "water_cost_yuan"]
METERED = ["electricity_kwh", "natural_gas_m3", "heat_gj", "water_m3"]
SIZES = ["building_area_m2", "occupants"]
INTENSITIES = ["energy_per_m2_kgce", "energy_per_capita_kgce", "water_per_capita_m3"]
DENSITY = "m2_per_occupant"
DIRECTORY = ["sector", "subsector", "admin_level", "district_code", "heat_billing", "parent_id"]
YOY = [*QUANTITIES, "total_energy_tce", *SIZES, *INTENSITIES, DENSITY]
"""The columns of the statistical stage's year-over-year table, in its order."""


def prepared(size: int, history_years: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return the year's rows (``_row``, indicators, directory columns) and the history."""
    directory = make_directory(size, seed=3)
    returns, _ = make_returns(directory, range(YEAR - history_years, YEAR + 1), seed=3)
    density = (
        pl.when(pl.col("occupants") > 0)
        .then(pl.col("building_area_m2") / pl.col("occupants"))
        .alias(DENSITY)
    )
    numeric = [*QUANTITIES, *COSTS, *SIZES, "reported_total_tce"]
    frame = returns.select(
        pl.col("institution_id").cast(pl.String),
        pl.col("year").cast(pl.Int64),
        *(pl.col(c).cast(pl.Float64) for c in numeric),
    )
    current = indicators(frame.filter(pl.col("year") == YEAR)).with_columns(density)
    history = indicators(frame.filter(pl.col("year") < YEAR)).with_columns(density)
    columns = directory.select(
        pl.col("institution_id").cast(pl.String), *(pl.col(c).cast(pl.String) for c in DIRECTORY)
    ).unique("institution_id", keep="first", maintain_order=True)
    current = current.with_row_index("_row").join(
        columns, on="institution_id", how="left", maintain_order="left"
    )
    return current, history


def calls(
    r: pl.DataFrame, h: pl.DataFrame, st: StatisticalSettings
) -> list[tuple[str, int, Callable[[], Any]]]:
    """Each call of the statistical stage: (name, rows in, thunk)."""
    out: list[tuple[str, int, Callable[[], Any]]] = []
    raw = r.select(*KEY, *QUANTITIES, *COSTS, *SIZES)
    out.append(("indicators (year)", raw.height, lambda: indicators(raw)))
    hraw = h.select(*KEY, *QUANTITIES, *COSTS, *SIZES)
    out.append(("indicators (history)", hraw.height, lambda: indicators(hraw)))
    frame, history = r.select("_row", *KEY, *YOY), h.select(*KEY, *YOY)
    factors = {c: slip_factors_for(c) for c in YOY}
    out.append(
        (
            "year_over_year_long",
            frame.height + history.height,
            lambda: year_over_year_long(
                frame, YOY, history=history, slip_factors=factors, tolerance=st.yoy_tolerance
            ),
        )
    )
    # the stage sorts history ∪ returns once for yoy, copies and round numbers
    compared = list(dict.fromkeys([*YOY, *QUANTITIES, *COSTS, *METERED]))
    hcompared = h.select(*KEY, *compared)
    out.append(
        (
            "earlier_returns",
            r.height + h.height,
            lambda: earlier_returns(r, hcompared, compared, *KEY),
        )
    )
    earlier = earlier_returns(r, hcompared, compared, *KEY)
    out.append(
        (
            "year_over_year_by_column (earlier given)",
            frame.height,
            lambda: year_over_year_by_column(
                frame, YOY, earlier=earlier, slip_factors=factors, tolerance=st.yoy_tolerance
            ),
        )
    )
    long = year_over_year_long(frame, YOY, history=history, slip_factors=factors)
    levels = [["year", "sector", "subsector"], ["year", "sector"], ["year"]]
    for column in [*INTENSITIES, DENSITY]:
        peers = r.select("_row", "year", "sector", "subsector", column)
        out.append(
            (
                f"robust_peer_scores {column}",
                peers.height,
                lambda p=peers, c=column: robust_peer_scores(
                    p, c, levels, min_group_size=st.peer_min_group_size, k=st.peer_k
                ),
            )
        )
    scored = robust_peer_scores(
        r.select("_row", "year", "sector", "subsector", INTENSITIES[0]), INTENSITIES[0], levels
    ).with_columns(pl.col("peer_score").abs().alias("_a"))
    out.append(("tail_p (peer, by year)", scored.height, lambda: tail_p(scored, "_a", ["year"])))
    categorical = [c for c in st.model_categorical if c in r.columns]
    for target in st.model_targets:
        rows = r.select("_row", target, *SIZES, *categorical)
        out.append(
            (
                f"expected_consumption {target}",
                rows.height,
                lambda t=target, x=rows: expected_consumption(
                    x,
                    t,
                    numeric=SIZES,
                    categorical=categorical,
                    level=st.model_level,
                    max_fit_rows=st.model_max_fit_rows,
                ),
            )
        )
    items = long.filter(pl.col("column").is_in([*QUANTITIES, "total_energy_tce"]))
    items = items.with_columns(pl.col("log_ratio").abs().alias("_a"))
    out.append(
        (
            "tail_p (changes, by column, year)",
            items.height,
            lambda: tail_p(items, "_a", ["column", "year"]),
        )
    )
    copies = [*QUANTITIES, *COSTS]
    h_items = h.select(*KEY, *copies)
    mine = r.select("_row", *KEY, *copies)
    out.append(
        (
            "copied_figures",
            mine.height + h_items.height,
            lambda: copied_figures(mine, copies, earlier=earlier, min_nonzero=2, rtol=1e-6),
        )
    )
    parents = r.select("_row", *KEY, "parent_id", *copies)
    out.append(
        (
            "identical_within_groups",
            parents.height,
            lambda: identical_within_groups(parents, copies, "parent_id", min_nonzero=2),
        )
    )
    metered = r.select("_row", *KEY, *METERED)
    out.append(
        (
            "round_numbers",
            metered.height + h_items.height,
            lambda: round_numbers(metered, METERED, earlier=earlier, prior_weight=1.0),
        )
    )
    # the evidence units of the stage: one p per return and field of each method
    units = pl.concat(
        [
            long.select(
                pl.col("row_index").alias("_row"),
                pl.lit("yoy").alias("method"),
                pl.col("column").alias("field"),
                "p",
                pl.lit(1.0).alias("_w"),
            ),
            scored.select(
                "_row",
                pl.lit("peer").alias("method"),
                pl.lit(INTENSITIES[0]).alias("field"),
                "peer_p",
                pl.lit(1.0).alias("_w"),
            ).rename({"peer_p": "p"}),
        ]
    ).filter(pl.col("p").is_not_null())
    out.append(
        (
            "cauchy_combination_by (per method)",
            units.height,
            lambda: cauchy_combination_by(units, "p", ["_row", "method"], weight="_w"),
        )
    )
    per_method = cauchy_combination_by(units, "p", ["_row", "method"], weight="_w")
    out.append(
        (
            "cauchy_combination_by (per return)",
            per_method.height,
            lambda: cauchy_combination_by(per_method, "p_combined", ["_row"]),
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--history-years", type=int, default=4)
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"polars {pl.__version__}"
    )
    st = StatisticalSettings()
    for size in (int(s) for s in args.sizes.split(",")):
        r, h = prepared(size, args.history_years)
        print(f"\n{size:,} institutions: {r.height:,} returns, {h.height:,} earlier returns")
        header = f"{'call':>42} {'rows in':>12} {'seconds':>8}"
        print(header)
        print("-" * len(header))
        total = 0.0
        for name, rows, run in calls(r, h, st):
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - start)
            total += best
            print(f"{name:>42} {rows:>12,} {best:>8.3f}")
        print(f"{'total':>42} {'':>12} {total:>8.3f}")


if __name__ == "__main__":
    main()
