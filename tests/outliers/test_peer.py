"""Robust peer scores: hand-computed groups, borrowing from the parent, degenerate groups."""

from __future__ import annotations

import math
import re

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from energy_audit.errors import SettingsError, UnusableInputError
from energy_audit.outliers import peer
from energy_audit.outliers.peer import MAD_TO_SIGMA, PEER_COLUMNS, robust_peer_scores
from energy_audit.synthetic import make_directory, make_returns

# Ten plausible figures and one typed ×1000 (100 kWh entered as 100,000).
KWH = [80.0, 85.0, 90.0, 95.0, 100_000.0, 105.0, 110.0, 115.0, 120.0, 125.0, 130.0]
OUTLIER_ROW = 4
# By hand: sorted, the 6th of 11 values is 110, so the median of the logs is ln 110. The absolute
# log deviations |ln(v / 110)| sorted are 0 (110), 0.0445 (115), 0.0465 (105), 0.0870 (120),
# 0.1278 (125), 0.1466 (95), 0.1671 (130), 0.2007 (90), 0.2578 (85), 0.3185 (80), 6.8124
# (100,000): the 6th is ln(110 / 95) = 0.146603, so MAD = 0.146603 and
# scale = 1.482602 × 0.146603 = 0.217355; the outlier's score is ln(100,000 / 110) / 0.217355
# = 6.812445 / 0.217355 = 31.343.
MEDIAN = 110.0
MAD = math.log(110 / 95)
SCALE = 1.482602218505602 * MAD  # 1 / Φ⁻¹(3/4)
OUTLIER_SCORE = math.log(100_000 / 110) / SCALE


def one_group() -> pl.DataFrame:
    return pl.DataFrame({"sector": ["school"] * len(KWH), "kwh": KWH})


def test_hand_made_group_median_mad_and_scores() -> None:
    out = robust_peer_scores(one_group(), "kwh", [["sector"]])
    assert round(MAD, 6) == 0.146603
    assert round(SCALE, 6) == 0.217355
    assert round(OUTLIER_SCORE, 3) == 31.343
    assert out["peer_median"].to_list() == pytest.approx([MEDIAN] * 11, rel=1e-12)
    assert out["peer_scale"].to_list() == pytest.approx([SCALE] * 11, rel=1e-12)
    assert out["peer_n"].to_list() == [11] * 11
    assert out["peer_level"].to_list() == [0] * 11
    scores = out["peer_score"].to_list()
    assert scores[OUTLIER_ROW] == pytest.approx(OUTLIER_SCORE, rel=1e-12)
    assert scores[OUTLIER_ROW] > 3.5
    others = [s for i, s in enumerate(scores) if i != OUTLIER_ROW]
    assert max(abs(s) for s in others) < 3.5
    # 80 kWh: ln(80 / 110) / scale = −0.318454 / 0.217354 = −1.4651
    assert scores[0] == pytest.approx(-1.4651, abs=1e-4)
    # the range where |score| ≤ 3.5, in kWh: 110 · exp(∓3.5 × 0.217354) = 51.405, 235.385
    assert out["peer_low"][0] == pytest.approx(MEDIAN * math.exp(-3.5 * SCALE), rel=1e-12)
    assert out["peer_high"][0] == pytest.approx(MEDIAN * math.exp(3.5 * SCALE), rel=1e-12)
    assert out["peer_low"][0] == pytest.approx(51.405, abs=1e-3)
    assert out["peer_high"][0] == pytest.approx(235.385, abs=1e-3)
    # two-sided normal p of z = −1.4651: 2 · Φ(−1.4651) = 0.1429
    assert out["peer_p"][0] == pytest.approx(0.1429, abs=1e-4)
    assert out["peer_p"][OUTLIER_ROW] < 1e-100


def test_mad_to_sigma_is_one_over_normal_quartile() -> None:
    # Rousseeuw & Croux (1993): b = 1 / Φ⁻¹(3/4) = 1.4826 makes the MAD consistent for σ.
    from scipy.stats import norm

    assert 1 / norm.ppf(0.75) == pytest.approx(MAD_TO_SIGMA, abs=1e-4)


def test_output_columns_order_and_dtypes() -> None:
    frame = one_group().with_columns(peer_score=pl.lit("old"))
    out = robust_peer_scores(frame, "kwh", [["sector"]])
    assert out.columns == ["sector", "kwh", *(f"peer_{c}" for c in PEER_COLUMNS)]
    assert out.schema["peer_n"] == pl.Int64
    assert out.schema["peer_level"] == pl.Int64
    assert out.schema["peer_score"] == pl.Float64
    custom = robust_peer_scores(one_group(), "kwh", [[]], prefix="kwh_peer_")
    assert custom.columns[2:] == [f"kwh_peer_{c}" for c in PEER_COLUMNS]


def test_small_subgroup_borrows_from_its_parent_and_clean_group_stays_clean() -> None:
    # school/primary: 12 clean values (its own group); school/kindergarten: 3 values, one of
    # them ×10,000 (a 万 slip): too few for their own median, they use all 15 schools.
    primary = [100.0, 104.0, 96.0, 110.0, 92.0, 101.0, 99.0, 107.0, 95.0, 103.0, 98.0, 102.0]
    kindergarten = [90.0, 0.0105, 97.0]
    frame = pl.DataFrame(
        {
            "sector": ["school"] * 15,
            "subsector": ["primary"] * 12 + ["kindergarten"] * 3,
            "kwh_per_m2": primary + kindergarten,
        }
    )
    out = robust_peer_scores(frame, "kwh_per_m2", [["sector", "subsector"], ["sector"]])
    own, borrowed = out.head(12), out.tail(3)
    assert own["peer_level"].to_list() == [0] * 12
    assert own["peer_n"].to_list() == [12] * 12
    # median of the 12 primary values: (100 + 101) / 2 on the log scale → √(100 · 101)
    assert own["peer_median"][0] == pytest.approx(math.sqrt(100 * 101), rel=1e-12)
    assert (own["peer_score"].abs() < 3.5).all()
    assert borrowed["peer_level"].to_list() == [1] * 3
    assert borrowed["peer_n"].to_list() == [15] * 3
    assert borrowed["peer_score"][1] < -3.5
    assert (borrowed["peer_score"].gather([0, 2]).abs() < 3.5).all()


def test_borrowing_goes_up_to_everyone_and_null_keys_belong_to_no_group() -> None:
    sectors = ["school"] * 10 + ["venue"] * 2 + [None]
    values = [float(v) for v in range(100, 113)]
    frame = pl.DataFrame({"sector": sectors, "v": values})
    out = robust_peer_scores(frame, "v", [["sector"], []])
    assert out["peer_level"].to_list() == [0] * 10 + [1] * 3
    assert out["peer_n"].to_list() == [10] * 10 + [13] * 3
    # no level big enough: every added column null, never an error
    none = robust_peer_scores(frame, "v", [["sector"]], min_group_size=11)
    assert none.select(f"peer_{c}" for c in PEER_COLUMNS).null_count().row(0) == (13,) * 8


def test_zero_mad_group_is_floored_not_infinite() -> None:
    # 8 of 11 institutions report exactly 100: MAD = 0; the scale is floored at 0.05 (log).
    values = [100.0] * 8 + [99.0, 101.0, 150.0]
    frame = pl.DataFrame({"v": values})
    out = robust_peer_scores(frame, "v", [[]])
    assert out["peer_scale"].to_list() == [0.05] * 11
    assert out["peer_score"].is_finite().all()
    # 150: ln(1.5) / 0.05 = 8.109
    assert out["peer_score"][10] == pytest.approx(math.log(1.5) / 0.05, rel=1e-12)
    assert out["peer_score"][8] == pytest.approx(math.log(0.99) / 0.05, rel=1e-12)
    # on the value scale the floor is relative to the median: 0.05 × 100 = 5
    linear = robust_peer_scores(frame, "v", [[]], log=False)
    assert linear["peer_scale"].to_list() == [5.0] * 11
    assert linear["peer_score"][10] == pytest.approx(10.0)
    assert linear["peer_low"][0] == pytest.approx(100.0 - 3.5 * 5.0)
    # a group of zeros on the value scale: scale 0, scores null (never inf or NaN)
    zeros = robust_peer_scores(pl.DataFrame({"v": [0.0] * 10 + [3.0]}), "v", [[]], log=False)
    assert zeros["peer_scale"].to_list() == [0.0] * 11
    assert zeros["peer_score"].null_count() == 11
    assert zeros["peer_p"].null_count() == 11


def test_null_zero_and_negative_values_get_null_scores_but_their_peers() -> None:
    frame = pl.DataFrame({"v": [*KWH, None, 0.0, -5.0, float("nan"), float("inf")]})
    out = robust_peer_scores(frame, "v", [[]])
    tail = out.tail(5)
    assert tail["peer_score"].null_count() == 5
    assert tail["peer_p"].null_count() == 5
    # the invalid values take no part in the statistics: the same as the 11 alone
    assert tail["peer_n"].to_list() == [11] * 5
    assert tail["peer_median"].to_list() == pytest.approx([MEDIAN] * 5, rel=1e-12)
    assert out["peer_score"][OUTLIER_ROW] == pytest.approx(OUTLIER_SCORE, rel=1e-12)
    # a column of nulls only (dtype Null) is scored too: nothing qualifies
    empty = robust_peer_scores(pl.DataFrame({"v": [None] * 3}), "v", [[]], min_group_size=1)
    assert empty["peer_score"].null_count() == 3


def test_lazy_and_eager_give_the_same_numbers_and_input_unchanged() -> None:
    directory = make_directory(600, seed=5)
    returns, _ = make_returns(directory, range(2023, 2025), seed=5)
    frame = returns.join(
        directory.select("institution_id", "sector", "subsector"),
        on="institution_id",
        how="left",
        maintain_order="left",
    )
    before = frame.clone()
    groups = [["sector", "subsector"], ["sector"], []]
    eager = robust_peer_scores(frame, "electricity_kwh", groups)
    lazy = robust_peer_scores(frame.lazy(), "electricity_kwh", groups)
    assert isinstance(lazy, pl.LazyFrame)
    assert_frame_equal(lazy.collect(), eager)
    assert_frame_equal(frame, before)
    assert eager.height == frame.height
    assert set(eager["peer_level"].unique().to_list()) <= {0, 1, 2}


def test_errors_name_the_problem() -> None:
    frame = one_group()
    with pytest.raises(UnusableInputError, match="缺少要评分的数值列 'kwh_x'") as info:
        robust_peer_scores(frame, "kwh_x", [[]])
    assert "value column 'kwh_x'" in info.value.message_en
    with pytest.raises(UnusableInputError, match=r"同类分组列.*subsector") as info:
        robust_peer_scores(frame, "kwh", [["sector", "subsector"]])
    assert re.search(r"peer-group column.*subsector", info.value.message_en)
    with pytest.raises(UnusableInputError, match="应为数值类型") as info:
        robust_peer_scores(frame, "sector", [[]])
    assert "must be numeric" in info.value.message_en
    with pytest.raises(SettingsError, match="而不是字符串 'sector'") as info:
        robust_peer_scores(frame, "kwh", "sector")  # type: ignore[arg-type]
    assert "not the string 'sector'" in info.value.message_en
    with pytest.raises(SettingsError, match="至少应包含一个分组层级") as info:
        robust_peer_scores(frame, "kwh", [])
    assert "at least one level" in info.value.message_en
    with pytest.raises(SettingsError, match="min_group_size"):
        robust_peer_scores(frame, "kwh", [[]], min_group_size=0)
    with pytest.raises(SettingsError, match="k 应为正数") as info:
        robust_peer_scores(frame, "kwh", [[]], k=0.0)
    assert "k must be positive" in info.value.message_en


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.floats(1e-3, 1e6), min_size=10, max_size=30),
    exponent=st.integers(-4, 4),
)
def test_scores_do_not_depend_on_the_unit(values: list[float], exponent: int) -> None:
    # kWh or 万kWh: the same institutions, the same scores; the median scales with the unit.
    factor = 10.0**exponent
    base = robust_peer_scores(pl.DataFrame({"v": values}), "v", [[]])
    scaled = robust_peer_scores(pl.DataFrame({"v": [v * factor for v in values]}), "v", [[]])
    np.testing.assert_allclose(scaled["peer_score"], base["peer_score"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scaled["peer_median"], base["peer_median"] * factor, rtol=1e-9)


# --------------------------------------------------------------------------------------------
# Group medians without a group_by: the same numbers


def test_an_even_median_is_polars_midpoint_and_nan_sorts_last() -> None:
    # the middle pair (1, 3) of four values: lo + (hi − lo) / 2, as polars; NaN is the largest
    assert peer._median(np.array([3.0, np.nan, 1.0, 7.0])) == 5.0
    assert peer._median(np.array([3.0, 1.0, 7.0, 2.0])) == 2.5
    assert math.isnan(peer._median(np.array([1.0, np.nan, np.nan])))
    assert math.isnan(peer._median(np.array([])))
    # 0.1 + (0.7 − 0.1) / 2 and (0.1 + 0.7) / 2 differ in the last bit: polars' is the first
    assert peer._median(np.array([0.1, 0.7])) == pl.Series([0.1, 0.7]).median() == 0.4
    assert (0.1 + 0.7) / 2 != 0.4


@pytest.mark.parametrize("seed", range(6))
def test_middle_pair_by_a_bracketing_sample_is_that_of_a_sort(seed: int, monkeypatch) -> None:
    monkeypatch.setattr(peer, "_SELECT_DIRECT", 64)  # the sampled path on small arrays
    rng = np.random.default_rng(seed)
    for n in (64, 65, 100, 1_001, 5_000):
        for values in (
            rng.normal(size=n),
            np.round(rng.normal(size=n), 1),  # ties
            np.where(rng.random(n) < 0.7, 0.0, rng.normal(size=n)),  # the middle in a tie
            np.sort(rng.normal(size=n)),  # a strided sample of sorted values
            np.where(rng.random(n) < 0.3, np.nan, rng.normal(size=n)),
            np.where(rng.random(n) < 0.6, np.nan, rng.normal(size=n)),  # NaN in the middle
        ):
            ordered = np.sort(values)
            k = (n - 1) // 2
            expected = (ordered[k], ordered[k if n % 2 else k + 1])
            got = peer.middle_pair(values)
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("seed", range(3))
def test_group_count_median_and_mad_are_those_of_a_group_by(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2_000
    frame = pl.DataFrame(
        {
            "g": [
                None if r < 0.05 else f"g{k}"
                for r, k in zip(rng.random(n), rng.integers(0, 9, n), strict=True)
            ],
            "x": np.round(rng.normal(size=n), 2),
        }
    ).with_columns(pl.when(pl.col("x") > 1.5).then(None).otherwise(pl.col("x")).alias("x"))
    groups = peer._groups(frame, ["g"])
    count, median, mad = peer._median_mad(
        groups, frame["x"].to_numpy(), frame["x"].is_not_null().to_numpy()
    )
    x = pl.col("x")
    expected = (
        frame.filter(pl.col("g").is_not_null())
        .group_by("g")
        .agg(
            x.count().alias("n"), x.median().alias("m"), (x - x.median()).abs().median().alias("d")
        )
    )
    got = pl.DataFrame(
        {
            "g": frame["g"],
            "n": groups.per_row("n", pl.Series(count)),
            "m": groups.per_row("m", pl.Series(median)),
            "d": groups.per_row("d", pl.Series(mad)),
        }
    )
    joined = frame.select("g").join(expected, on="g", how="left", maintain_order="left")
    assert got["n"].cast(pl.UInt32).to_list() == joined["n"].to_list()
    assert_frame_equal(got.select("m", "d"), joined.select("m", "d"), check_exact=True)
