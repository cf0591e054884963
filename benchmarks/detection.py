"""Detection benchmark of the statistical stage on synthetic cities with injected defects.

For each seed: a directory of ``--institutions`` institutions and returns of 2020-2024 with the
default defect rates (:func:`energy_audit.synthetic.make_returns`); the returns of 2024 are scored
with the earlier years as history (:func:`energy_audit.verify.statistical.score_returns`), the
returns ranked by priority, and the panel's review budget is the top ``--budget`` share of the
year's returns. Prints, per defect kind, the recall within the budget (share of the injected
returns of that kind that are in the budget), the precision of the budget (share of reviewed
returns with any injected defect; with a statistical one), the number of returns at q ≤ 0.05
and the time of each step (measured directly, ``score_returns(timings=...)``).

Usage: ``python benchmarks/detection.py [--institutions 20000] [--seeds 1,2,3] [--budget 0.05]``
"""

from __future__ import annotations

import argparse
import time

import polars as pl

from energy_audit.synthetic import STATISTICAL_DEFECT_KINDS, make_directory, make_returns
from energy_audit.verify.statistical import score_returns

YEARS = range(2020, 2025)


def evaluate(
    ranked: pl.DataFrame, truth: pl.DataFrame, year: int, budget: float
) -> tuple[pl.DataFrame, dict[str, float]]:
    """Recall per defect kind within the budget, and the budget's precision.

    Parameters
    ----------
    ranked : polars.DataFrame
        :func:`score_returns` of the year's returns (``institution_id``, ``year``,
        ``priority``, ``q_value``).
    truth : polars.DataFrame
        Truth table of :func:`make_returns`.
    year : int
        Year scored.
    budget : float
        Share of the year's returns the panel reviews.

    Returns
    -------
    per_kind : polars.DataFrame
        ``defect``, ``injected`` (returns), ``found`` (in the budget), ``recall``.
    summary : dict
        ``recall_statistical`` (all statistical kinds together), ``reviewed``,
        ``precision_any``, ``precision_statistical``, ``at_fdr_05``.
    """
    n = max(1, round(budget * ranked.height))
    top = (
        ranked.unique(["institution_id", "year"], keep="first")
        .sort(["priority", "institution_id"], descending=[True, False])
        .head(n)
        .select("institution_id", "year")
    )
    t = truth.filter(pl.col("year") == year).select("institution_id", "year", "defect").unique()
    flagged = t.join(
        top.with_columns(pl.lit(True).alias("found")), on=["institution_id", "year"], how="left"
    )
    per_kind = (
        flagged.filter(pl.col("defect").is_in(STATISTICAL_DEFECT_KINDS))
        .group_by("defect")
        .agg(pl.len().alias("injected"), pl.col("found").fill_null(False).sum().alias("found"))
        .with_columns((pl.col("found") / pl.col("injected")).alias("recall"))
        .sort("defect")
    )
    any_defect = top.join(t, on=["institution_id", "year"], how="semi")
    stat_defect = top.join(
        t.filter(pl.col("defect").is_in(STATISTICAL_DEFECT_KINDS)),
        on=["institution_id", "year"],
        how="semi",
    )
    summary = {
        "recall_statistical": per_kind["found"].sum() / max(per_kind["injected"].sum(), 1),
        "reviewed": float(top.height),
        "precision_any": any_defect.height / top.height,
        "precision_statistical": stat_defect.height / top.height,
        "at_fdr_05": float((ranked["q_value"] <= 0.05).sum()),
    }
    return per_kind, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--institutions", type=int, default=20_000)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--budget", type=float, default=0.05)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    kinds, summaries, timings = [], [], []
    for seed in seeds:
        directory = make_directory(args.institutions, seed)
        returns, truth = make_returns(directory, YEARS, seed)
        year = max(YEARS)
        current = returns.filter(pl.col("year") == year)
        history = returns.filter(pl.col("year") < year)
        times: dict[str, float] = {}
        start = time.perf_counter()
        ranked = score_returns(current, directory=directory, history=history, timings=times)
        times["all methods (total)"] = time.perf_counter() - start
        timings.extend({"seed": seed, "step": k, "seconds": v} for k, v in times.items())
        per_kind, summary = evaluate(ranked, truth, year, args.budget)
        kinds.append(per_kind.with_columns(pl.lit(seed).alias("seed")))
        summaries.append({"seed": seed, "returns": current.height, **summary})
    table = pl.concat(kinds)
    by_kind = (
        table.group_by("defect")
        .agg(
            pl.col("injected").sum(),
            pl.col("found").sum(),
            pl.col("recall").min().alias("worst_seed"),
        )
        .with_columns((pl.col("found") / pl.col("injected")).alias("recall"))
        .sort("defect")
    )
    total = by_kind.select(pl.col("found").sum() / pl.col("injected").sum()).item()
    pl.Config.set_tbl_rows(50)
    pl.Config.set_tbl_width_chars(120)
    print(
        f"{args.institutions} institutions, seeds {seeds}, "
        f"budget {args.budget:.0%} of the returns of {max(YEARS)}"
    )
    print(by_kind)
    print(f"overall recall of statistical defects: {total:.3f}")
    print(pl.DataFrame(summaries))
    print(
        pl.DataFrame(timings)
        .group_by("step", maintain_order=True)
        .agg(
            pl.col("seconds").mean().round(3).alias("mean_seconds"),
            pl.col("seconds").max().round(3).alias("max_seconds"),
        )
    )


if __name__ == "__main__":
    main()
