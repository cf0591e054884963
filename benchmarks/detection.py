"""Detection benchmark of the statistical stage, beside a naive baseline, per noise family.

For each noise family of the synthetic generator (:data:`energy_audit.synthetic.NOISE_FAMILIES`)
and each seed: a directory of ``--institutions`` institutions and returns of 2020-2024 with
the default defect rates; the history (2020-2023) goes through files written in 万 units and
read back (:func:`energy_audit.synthetic.through_files`), as an office's spreadsheets bring it;
the returns of 2024 are ranked by the library (:func:`energy_audit.verify.statistical.
score_returns`, lowest combined p first) and by the naive detector of this file, and the panel's
review budget is the top ``--budgets`` share of the year's returns.

Printed, per family:

- recall per statistical defect kind at each budget (share of the returns with that kind of
  defect that are in the budget), for the library and the naive baseline, over all seeds, and
  the worst seed;
- the same for the panel's queue (``queue``): every finding of :func:`energy_audit.verify.run.
  verify`, rules and statistics ranked together (:mod:`energy_audit.verify.queue`), a return
  ranked by its findings' highest priority — what the panel actually works through;
- precision of the 5 % budget (share of reviewed returns with any injected defect);
- calibration on a clean city of the same family (no defects): the share of returns whose
  combined p ≤ α, for α = 1 % and 5 % (calibrated: within [α/2, 2α]), and the share whose
  p of each method ≤ 1 % (the pieces, which the combination's calibration on the year does
  not see: below 1 % a method is conservative there);
- the time of each step of the library (``score_returns(timings=...)``).

The naive detector is what an analyst writes in twenty lines of polars: per return the largest
robust z (median and 1.4826 · MAD) of the log intensities (energy per m², energy per person,
water per person) within sector and year, and of the log year-over-year ratio of each item.

Usage::

    .venv/bin/python benchmarks/detection.py                      # 20 k institutions, seeds 1-5
    .venv/bin/python benchmarks/detection.py --institutions 5000 --seeds 1,2 --families heavy
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl

from energy_audit.factors import ITEM_COLUMNS
from energy_audit.indicators import indicators
from energy_audit.synthetic import (
    NOISE_FAMILIES,
    STATISTICAL_DEFECT_KINDS,
    make_directory,
    make_returns,
    through_files,
)
from energy_audit.verify.run import verify
from energy_audit.verify.statistical import METHODS, score_returns

YEARS = range(2020, 2025)
YEAR = max(YEARS)
ITEMS = (*ITEM_COLUMNS.values(), "water_m3")
INTENSITIES = ("energy_per_m2_kgce", "energy_per_capita_kgce", "water_per_capita_m3")


def naive_scores(
    current: pl.DataFrame, history: pl.DataFrame, directory: pl.DataFrame
) -> pl.DataFrame:
    """The naive detector: largest robust |z| of log intensities and log year-over-year ratios."""

    def robust_z(expr: pl.Expr, by: list[str]) -> pl.Expr:
        med = expr.median().over(by)
        return ((expr - med) / ((expr - med).abs().median().over(by) * 1.4826)).abs()

    rows = indicators(current).join(
        directory.select("institution_id", "sector"), on="institution_id", how="left"
    )
    previous = (
        history.sort("year")
        .unique("institution_id", keep="last")
        .select("institution_id", *(pl.col(c).alias(f"{c}_prev") for c in ITEMS))
    )
    rows = rows.join(previous, on="institution_id", how="left").with_row_index("_row")
    logs = [pl.when(pl.col(c) > 0).then(pl.col(c).log()) for c in INTENSITIES]
    ratios = [
        pl.when((pl.col(c) > 0) & (pl.col(f"{c}_prev") > 0)).then(
            (pl.col(c) / pl.col(f"{c}_prev")).log()
        )
        for c in ITEMS
    ]
    zs = [robust_z(e, ["sector"]).alias(f"z{i}") for i, e in enumerate(logs)]
    zs += [robust_z(e, ["year"]).alias(f"y{i}") for i, e in enumerate(ratios)]
    scored = rows.with_columns(zs).with_columns(
        pl.max_horizontal(pl.col(r"^[zy]\d+$").fill_nan(None)).fill_null(0.0).alias("score")
    )
    return scored.select("institution_id", "year", "score")


def top_share(ranked: pl.DataFrame, share: float) -> pl.DataFrame:
    """The returns in the review budget: the top ``share`` of ``ranked`` (``score`` high first,
    then ``tiebreak`` high first where the frame has one)."""
    n = max(1, round(share * ranked.height))
    if "tiebreak" not in ranked.columns:
        ranked = ranked.with_columns(pl.lit(0.0).alias("tiebreak"))
    return (
        ranked.unique(["institution_id", "year"], keep="first")
        .sort(["score", "tiebreak", "institution_id"], descending=[True, True, False])
        .head(n)
        .select("institution_id", "year")
    )


def recall(top: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Returns per statistical defect kind: injected, found in ``top``."""
    t = truth.filter((pl.col("year") == YEAR) & pl.col("defect").is_in(STATISTICAL_DEFECT_KINDS))
    t = t.select("institution_id", "year", "defect").unique()
    flagged = t.join(
        top.with_columns(pl.lit(True).alias("found")), on=["institution_id", "year"], how="left"
    )
    return flagged.group_by("defect").agg(
        pl.len().alias("injected"), pl.col("found").fill_null(False).sum().alias("found")
    )


def one_city(family: str, seed: int, n: int, budgets: list[float], folder: Path) -> dict:
    """Rank one city's returns with the library and the naive detector."""
    directory = make_directory(n, seed)
    returns, truth = make_returns(directory, YEARS, seed, noise=family)
    current = returns.filter(pl.col("year") == YEAR)
    history = through_files(returns.filter(pl.col("year") < YEAR), folder / f"{family}_{seed}")
    times: dict[str, float] = {}
    start = time.perf_counter()
    scored = score_returns(current, directory=directory, history=history, timings=times)
    times["all (total)"] = time.perf_counter() - start
    library = scored.select(
        "institution_id", "year", (-pl.col("p_combined").fill_null(1.0).log10()).alias("score")
    )
    naive = naive_scores(current, history, directory)
    # the panel's queue: every finding of verify (rules and statistics), a return ranked by
    # its findings' priority (the library's statistical score breaks ties)
    start = time.perf_counter()
    checked = verify(directory, current, YEAR, history=history)
    times["verify (queue)"] = time.perf_counter() - start
    priority = (
        checked.findings.filter(pl.col("year") == YEAR)
        .group_by("institution_id", "year")
        .agg(pl.col("priority").max())
    )
    queue = library.join(priority, on=["institution_id", "year"], how="left").select(
        "institution_id",
        "year",
        pl.col("priority").fill_null(0.0).alias("score"),
        pl.col("score").alias("tiebreak"),
    )
    out = {"timings": times, "recall": [], "precision": {}}
    defective = truth.filter(pl.col("year") == YEAR).select("institution_id", "year").unique()
    for name, ranked in (("library", library), ("naive", naive), ("queue", queue)):
        for b in budgets:
            top = top_share(ranked, b)
            out["recall"].append(
                recall(top, truth).with_columns(
                    pl.lit(name).alias("detector"),
                    pl.lit(b).alias("budget"),
                    pl.lit(seed).alias("seed"),
                )
            )
            if b == max(budgets):
                out["precision"][name] = (
                    top.join(defective, on=["institution_id", "year"], how="semi").height
                    / top.height
                )
    return out


def calibration(family: str, seed: int, n: int, folder: Path) -> dict[str, float]:
    """Share of a clean city's returns with combined p ≤ 1 % and ≤ 5 %."""
    directory = make_directory(n, seed)
    returns, _ = make_returns(directory, YEARS, seed, defects=False, noise=family)
    history = through_files(
        returns.filter(pl.col("year") < YEAR), folder / f"clean_{family}_{seed}"
    )
    scored = score_returns(
        returns.filter(pl.col("year") == YEAR), directory=directory, history=history
    )
    p = scored["p_combined"].fill_null(1.0)
    out = {"p<=1%": float((p <= 0.01).mean()), "p<=5%": float((p <= 0.05).mean())}
    # each method's own p (the pieces, before the combination is calibrated on the year)
    for method in METHODS:
        if method in scored.columns:
            out[method] = float((scored[method].fill_null(1.0) <= 0.01).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--institutions", type=int, default=20_000)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--budgets", default="0.02,0.05")
    parser.add_argument("--families", default=",".join(NOISE_FAMILIES))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [float(b) for b in args.budgets.split(",")]
    pl.Config.set_tbl_rows(60)
    pl.Config.set_tbl_width_chars(160)
    pl.Config.set_tbl_hide_dataframe_shape(True)
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            runs = [one_city(family, s, args.institutions, budgets, Path(tmp)) for s in seeds]
            table = pl.concat([r for run in runs for r in run["recall"]])
            per_seed = table.with_columns((pl.col("found") / pl.col("injected")).alias("recall"))
            by_kind = (
                per_seed.group_by("detector", "budget", "defect")
                .agg(
                    pl.col("injected").sum(),
                    (pl.col("found").sum() / pl.col("injected").sum()).round(3).alias("recall"),
                    pl.col("recall").min().round(3).alias("worst_seed"),
                )
                .sort("defect", "budget")
            )
            wide = by_kind.filter(pl.col("detector") == "library", pl.col("budget") == max(budgets))
            wide = wide.select("defect", "injected")
            for b in budgets:
                for d in ("library", "naive", "queue"):
                    col = by_kind.filter(pl.col("detector") == d, pl.col("budget") == b)
                    wide = wide.join(
                        col.select("defect", pl.col("recall").alias(f"{d[:3]} {b:.0%}")),
                        on="defect",
                        how="left",
                    )
            worst = by_kind.filter(
                pl.col("detector") == "library", pl.col("budget") == max(budgets)
            )
            wide = wide.join(
                worst.select("defect", pl.col("worst_seed").alias(f"lib {max(budgets):.0%} worst")),
                on="defect",
            ).sort("defect")
            overall = (
                per_seed.group_by("detector", "budget", "seed")
                .agg((pl.col("found").sum() / pl.col("injected").sum()).alias("recall"))
                .group_by("detector", "budget")
                .agg(
                    pl.col("recall").mean().round(3).alias("all kinds"),
                    pl.col("recall").min().round(3).alias("worst seed"),
                )
                .sort("detector", "budget")
            )
            clean = [calibration(family, s, args.institutions, Path(tmp)) for s in seeds]
            cal = pl.DataFrame(clean)
            timings = (
                pl.DataFrame(
                    [{"step": k, "seconds": v} for run in runs for k, v in run["timings"].items()]
                )
                .group_by("step", maintain_order=True)
                .agg(pl.col("seconds").mean().round(3))
            )
            precision = {
                d: sum(run["precision"][d] for run in runs) / len(runs)
                for d in ("library", "naive", "queue")
            }
            print(f"\n=== noise family {family!r}: {NOISE_FAMILIES[family]}")
            print(
                f"{args.institutions} institutions, seeds {seeds}, returns of {YEAR}, "
                f"budgets {budgets}"
            )
            print(wide)
            print(overall)
            print(
                f"precision at {max(budgets):.0%}: library {precision['library']:.3f}, "
                f"naive {precision['naive']:.3f}, queue {precision['queue']:.3f}"
            )
            print(
                "calibration (clean city): p<=1% share "
                + ", ".join(f"{v:.4f}" for v in cal["p<=1%"])
                + " | p<=5% share "
                + ", ".join(f"{v:.4f}" for v in cal["p<=5%"])
            )
            methods = [m for m in METHODS if m in cal.columns]
            print(
                "calibration of each method's own p (clean city, mean over seeds): p<=1% share "
                + ", ".join(f"{m} {cal[m].mean():.4f}" for m in methods)
            )
            print(timings)
            lib = overall.filter(pl.col("detector") == "library", pl.col("budget") == max(budgets))
            nai = overall.filter(pl.col("detector") == "naive", pl.col("budget") == max(budgets))
            que = overall.filter(pl.col("detector") == "queue", pl.col("budget") == max(budgets))
            summary.append(
                {
                    "family": family,
                    "library": lib["all kinds"].item(),
                    "naive": nai["all kinds"].item(),
                    "queue": que["all kinds"].item(),
                    "library worst seed": lib["worst seed"].item(),
                    "p<=1% (max)": cal["p<=1%"].max(),
                    "p<=5% (max)": cal["p<=5%"].max(),
                    "p<=1% (min)": cal["p<=1%"].min(),
                    "p<=5% (min)": cal["p<=5%"].min(),
                }
            )
    print(f"\n=== summary: recall of all statistical defects at {max(budgets):.0%}, calibration")
    print(pl.DataFrame(summary))


if __name__ == "__main__":
    main()
