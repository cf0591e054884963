"""Expected consumption: an exact tiny fit, known coefficients despite outliers, the city."""

from __future__ import annotations

import math
import re

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats

from energy_audit.errors import SettingsError, UnusableInputError
from energy_audit.indicators import indicators
from energy_audit.outliers import regression
from energy_audit.outliers.regression import (
    MODEL_COLUMNS,
    OTHER_LEVEL,
    expected_consumption,
    fit_expected_consumption,
)
from energy_audit.synthetic import make_directory, make_returns

# --------------------------------------------------------------------------------------------
# A tiny fit computed by hand
# --------------------------------------------------------------------------------------------

# y = 1 + 2x ± 0.1 for x = 1…8, signs the Thue-Morse sequence (orthogonal to 1 and x on 8
# points, so least squares on these rows gives exactly 1 and 2), and x = 9 off by +100.
THUE_MORSE = [1, -1, -1, 1, -1, 1, 1, -1]
X = [float(v) for v in range(1, 10)]
Y = [1 + 2 * x + 0.1 * e for x, e in zip(X, THUE_MORSE, strict=False)] + [1 + 2 * 9 + 100]
# Residuals at (1, 2): ±0.1 (eight) and 100; median 0.1, absolute deviations from it 0 (four),
# 0.2 (four) and 99.9, whose median is 0.2: scale s = 1.482602 × 0.2 = 0.296520.
SCALE = 1.482602218505602 * 0.2  # 1 / Φ⁻¹(3/4)
# Every clean residual is 0.1 in size, so all eight get the same bisquare weight
# w = (1 − u²)², u = 0.1 / (4.685 s), and the outlier (u ≫ 1) gets 0: the fit is least squares
# on the eight clean rows, i.e. exactly 1 + 2x. Their leverage is that of ordinary least
# squares on x = 1…8: h = 1/8 + (x − 4.5)² / 42 (Σ(x − 4.5)² = 42).
U = 0.1 / (4.685 * SCALE)
W = (1 - U**2) ** 2
H = [1 / 8 + (x - 4.5) ** 2 / 42 for x in X[:8]]


def tiny() -> pl.DataFrame:
    return pl.DataFrame({"y": Y, "x": X})


def test_tiny_fit_by_hand() -> None:
    fit = fit_expected_consumption(tiny(), "y", numeric=["x"], categorical=[], log=False)
    assert dict(fit.coefficients) == pytest.approx({"intercept": 1.0, "x": 2.0}, abs=1e-7)
    assert fit.scale == pytest.approx(0.29652044, rel=1e-7)
    assert (fit.n, fit.df_resid, fit.weights_zero) == (9, 7, 1)
    assert fit.converged
    assert fit.unscaled_covariance.shape == (2, 2)


def test_tiny_studentized_residuals_and_interval_by_hand() -> None:
    out = expected_consumption(tiny(), "y", numeric=["x"], categorical=[], log=False)
    assert out["model_expected"].to_list() == pytest.approx([1 + 2 * x for x in X], abs=1e-6)
    assert out["model_residual"].to_list() == pytest.approx(
        [0.1 * e for e in THUE_MORSE] + [100.0], abs=1e-6
    )
    # clean rows: e / (s √(1 − h)); x = 1: 0.1 / (0.29652 × √(1 − 0.416667)) = 0.44156
    studentized = [0.1 * e / (SCALE * math.sqrt(1 - h)) for e, h in zip(THUE_MORSE, H, strict=True)]
    assert studentized[0] == pytest.approx(0.44156, abs=1e-5)
    # the outlier has weight 0, hence leverage 0: 100 / 0.29652 = 337.245
    assert out["model_studentized"].to_list() == pytest.approx(
        [*studentized, 100 / SCALE], rel=1e-6
    )
    # prediction interval: ŷ ∓ t(0.975; 7) · s · √(1 + h / w) (x (XᵀWX)⁻¹ xᵀ = h / w)
    t = stats.t.ppf(0.975, 7)
    assert t == pytest.approx(2.364624, abs=1e-6)
    low = [1 + 2 * x - t * SCALE * math.sqrt(1 + h / W) for x, h in zip(X, H, strict=False)]
    assert out["model_low"].head(8).to_list() == pytest.approx(low, rel=1e-6)
    assert out["model_low"][0] == pytest.approx(2.164174, abs=1e-5)
    assert out["model_p"][0] == pytest.approx(2 * stats.t.sf(studentized[0], 7), rel=1e-6)
    assert out["model_p"][8] < 1e-12


# --------------------------------------------------------------------------------------------
# Known coefficients despite 5 % gross outliers
# --------------------------------------------------------------------------------------------

EFFECTS = {"agency": 0.0, "school": 0.5, "venue": -0.4, "hospital": 0.8}
PROBABILITIES = [0.4, 0.25, 0.2, 0.15]  # agency most frequent: the reference level


def known_model(seed: int = 1, n: int = 4000) -> tuple[pl.DataFrame, np.ndarray]:
    """log E = 2 + 0.9 log area + 0.3 log occupants + sector + N(0, 0.2²); 5 % of E × 10."""
    rng = np.random.default_rng(seed)
    log_area = rng.normal(9.0, 1.5, n)
    log_occupants = rng.normal(5.0, 1.0, n) + 0.3 * (log_area - 9.0)
    sector = rng.choice(list(EFFECTS), n, p=PROBABILITIES)
    effect = np.array([EFFECTS[s] for s in sector])
    log_energy = 2.0 + 0.9 * log_area + 0.3 * log_occupants + effect + rng.normal(0, 0.2, n)
    outlier = np.zeros(n, dtype=bool)
    outlier[rng.choice(n, n // 20, replace=False)] = True
    log_energy[outlier] += math.log(10.0)
    frame = pl.DataFrame(
        {
            "energy_kgce": np.exp(log_energy),
            "area_m2": np.exp(log_area),
            "occupants": np.exp(log_occupants),
            "sector": sector,
        }
    )
    return frame, outlier


TRUE_COEFFICIENTS = {
    "intercept": 2.0,
    "log(area_m2)": 0.9,
    "log(occupants)": 0.3,
    "sector[school]": 0.5,
    "sector[venue]": -0.4,
    "sector[hospital]": 0.8,
}


def test_coefficients_recovered_despite_outliers_and_ols_is_not() -> None:
    frame, _ = known_model()
    fit = fit_expected_consumption(
        frame, "energy_kgce", numeric=["area_m2", "occupants"], categorical=["sector"]
    )
    assert fit.converged
    assert fit.reference == {"sector": "agency"}
    assert set(fit.coefficients) == set(TRUE_COEFFICIENTS)
    for name, true in TRUE_COEFFICIENTS.items():
        tolerance = 0.05 if name == "intercept" else 0.025
        assert fit.coefficients[name] == pytest.approx(true, abs=tolerance), name
    assert fit.scale == pytest.approx(0.2, rel=0.15)
    # ordinary least squares on the same design is pulled up by the outliers (by about
    # 5 % × ln 10 = 0.115 on the log scale)
    design = np.column_stack(
        [
            np.ones(frame.height),
            np.log(frame["area_m2"].to_numpy()),
            np.log(frame["occupants"].to_numpy()),
            *((frame["sector"] == s).to_numpy().astype(float) for s in list(EFFECTS)[1:]),
        ]
    )
    log_energy = np.log(frame["energy_kgce"].to_numpy())
    ols = np.linalg.lstsq(design, log_energy, rcond=None)[0]
    assert abs(ols[0] - TRUE_COEFFICIENTS["intercept"]) > 0.1
    robust = np.array([fit.coefficients[name] for name in TRUE_COEFFICIENTS])
    true = np.array(list(TRUE_COEFFICIENTS.values()))
    centre = design.mean(axis=0)
    assert abs(centre @ (robust - true)) < 0.02
    assert centre @ (ols - true) > 0.1


def test_planted_outliers_stand_out_and_clean_rows_fall_inside_the_interval() -> None:
    frame, outlier = known_model()
    out = expected_consumption(
        frame, "energy_kgce", numeric=["area_m2", "occupants"], categorical=["sector"]
    )
    studentized = out["model_studentized"].to_numpy()
    assert (np.abs(studentized[outlier]) > 3).all()
    energy = frame["energy_kgce"].to_numpy()
    inside = (energy >= out["model_low"].to_numpy()) & (energy <= out["model_high"].to_numpy())
    assert inside[~outlier].mean() >= 0.95
    assert not inside[outlier].any()
    # the residual is the log ratio of reported to expected
    np.testing.assert_allclose(
        out["model_residual"].to_numpy(),
        np.log(energy / out["model_expected"].to_numpy()),
        rtol=1e-9,
        atol=1e-12,
    )


# --------------------------------------------------------------------------------------------
# Levels, invalid rows, frames
# --------------------------------------------------------------------------------------------


def small_frame() -> pl.DataFrame:
    frame, _ = known_model(seed=3, n=300)
    return frame.with_columns(
        sector=pl.when(pl.int_range(pl.len()) < 3)
        .then(pl.lit("observatory"))  # 3 rows: rare
        .when(pl.int_range(pl.len()) < 6)
        .then(pl.lit("museum"))  # 3 rows: rare; together with observatory 6 ≥ 5
        .when(pl.int_range(pl.len()) < 12)
        .then(None)  # 6 rows: a level of its own
        .otherwise(pl.col("sector"))
    )


def test_rare_levels_are_merged_and_null_is_a_level() -> None:
    fit = fit_expected_consumption(
        small_frame(), "energy_kgce", numeric=["area_m2", "occupants"], categorical=["sector"]
    )
    assert fit.merged == {"sector": ("museum", "observatory")}
    assert OTHER_LEVEL in fit.levels["sector"]
    assert "(null)" in fit.levels["sector"]
    assert f"sector[{OTHER_LEVEL}]" in fit.coefficients
    assert fit.levels["sector"][0] == fit.reference["sector"] == "agency"
    # too few together (3 < 5): merged into the reference instead of a level of 3
    few = small_frame().with_columns(
        sector=pl.when(pl.col("sector") == "museum").then(pl.lit("agency")).otherwise("sector")
    )
    fit = fit_expected_consumption(
        few, "energy_kgce", numeric=["area_m2", "occupants"], categorical=["sector"]
    )
    assert fit.merged == {"sector": ("observatory",)}
    assert OTHER_LEVEL not in fit.levels["sector"]


def test_invalid_rows_kept_with_nulls() -> None:
    frame = small_frame().with_columns(
        energy_kgce=pl.when(pl.int_range(pl.len()) == 20).then(0.0).otherwise("energy_kgce"),
        area_m2=pl.when(pl.int_range(pl.len()) == 21).then(None).otherwise("area_m2"),
        occupants=pl.when(pl.int_range(pl.len()) == 22).then(-1.0).otherwise("occupants"),
    )
    out = expected_consumption(
        frame, "energy_kgce", numeric=["area_m2", "occupants"], categorical=["sector"]
    )
    assert out.height == frame.height
    # zero energy: an expected value and its interval, no residual
    zero = out.row(20, named=True)
    assert zero["model_expected"] > 0 and zero["model_low"] < zero["model_high"]
    assert zero["model_residual"] is None and zero["model_studentized"] is None
    # no valid area or occupants: nothing
    for row in (21, 22):
        assert all(out.row(row, named=True)[f"model_{c}"] is None for c in MODEL_COLUMNS)
    assert out.select(f"model_{c}" for c in MODEL_COLUMNS).null_count().row(0) == (
        2, 3, 3, 2, 2, 3
    )  # fmt: skip


def test_lazy_and_eager_give_the_same_numbers_and_input_unchanged() -> None:
    frame = small_frame().with_columns(model_p=pl.lit("old"))
    before = frame.clone()
    kwargs = {"numeric": ["area_m2", "occupants"], "categorical": ["sector"]}
    eager = expected_consumption(frame, "energy_kgce", **kwargs)
    lazy = expected_consumption(frame.lazy(), "energy_kgce", **kwargs)
    assert isinstance(lazy, pl.LazyFrame)
    assert_frame_equal(lazy.collect(), eager)
    assert_frame_equal(frame, before)
    assert eager.columns == [*small_frame().columns, *(f"model_{c}" for c in MODEL_COLUMNS)]
    assert all(eager.schema[f"model_{c}"] == pl.Float64 for c in MODEL_COLUMNS)


def test_aliased_column_is_dropped_and_reported() -> None:
    frame = small_frame().with_columns(area_ft2=pl.col("area_m2") * 10.7639)
    fit = fit_expected_consumption(
        frame, "energy_kgce", numeric=["area_m2", "area_ft2"], categorical=["sector"]
    )
    assert fit.dropped == ("log(area_ft2)",)
    assert "log(area_ft2)" not in fit.coefficients
    assert fit.unscaled_covariance.shape == (len(fit.coefficients),) * 2


def test_errors_name_the_problem() -> None:
    frame = small_frame()
    kwargs = {"numeric": ["area_m2"], "categorical": ["sector"]}
    with pytest.raises(UnusableInputError, match=r"缺少模型所需的列.*water_m3") as info:
        expected_consumption(frame, "water_m3", **kwargs)
    assert re.search(r"lacks column.*water_m3", info.value.message_en)
    with pytest.raises(UnusableInputError, match=r"sector（String）应为数值类型") as info:
        expected_consumption(frame, "sector", numeric=["area_m2"], categorical=[])
    assert "sector (String) must be numeric" in info.value.message_en
    with pytest.raises(UnusableInputError, match="只有 2 行") as info:
        expected_consumption(frame.head(2), "energy_kgce", **kwargs)
    assert "only 2 row" in info.value.message_en
    with pytest.raises(SettingsError, match="level 应介于 0 和 1 之间") as info:
        expected_consumption(frame, "energy_kgce", level=95, **kwargs)
    assert "level must be between 0 and 1" in info.value.message_en
    with pytest.raises(SettingsError, match="而不是字符串 'area_m2'") as info:
        expected_consumption(frame, "energy_kgce", numeric="area_m2", categorical=[])
    assert "not the string 'area_m2'" in info.value.message_en
    with pytest.raises(SettingsError, match="不能同时作为预测变量") as info:
        fit_expected_consumption(frame, "energy_kgce", numeric=["energy_kgce"], categorical=[])
    assert "cannot also be a predictor" in info.value.message_en


def test_too_few_rows_named_in_both_languages() -> None:
    frame = small_frame().head(2)
    with pytest.raises(UnusableInputError) as info:
        expected_consumption(frame, "energy_kgce", numeric=["area_m2"], categorical=["sector"])
    for message in (info.value.message_zh, info.value.message_en):
        assert "energy_kgce" in message and " 2 " in message


# --------------------------------------------------------------------------------------------
# The synthetic city
# --------------------------------------------------------------------------------------------

CITY_CATEGORICAL = ["sector", "admin_level", "district_code", "heat_billing"]


def city(seed: int, defects: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    directory = make_directory(4000, seed=seed)
    returns, truth = make_returns(directory, range(2023, 2025), seed=seed, defects=defects)
    frame = returns.filter(pl.col("year") == 2024).join(
        directory.select("institution_id", *CITY_CATEGORICAL),
        on="institution_id",
        how="left",
        maintain_order="left",
    )
    return indicators(frame), truth.filter(pl.col("year") == 2024)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 7])
def test_city_unit_slips_of_heat_and_coal_are_in_the_top_five_percent(seed: int) -> None:
    frame, truth = city(seed, defects=True)
    out = expected_consumption(
        frame.with_row_index("row"),
        "total_energy_tce",
        numeric=["building_area_m2", "occupants"],
        categorical=CITY_CATEGORICAL,
    )
    budget = math.ceil(0.05 * out.height)
    top = out.sort(pl.col("model_studentized").abs(), descending=True, nulls_last=True)
    flagged = top.head(budget).select("institution_id", "year").unique()
    # ×1000 on heat (MJ under GJ) or coal (kg under t) multiplies the total many times over
    slips = truth.filter(pl.col("defect").is_in(["unit_slip_mj_for_gj", "unit_slip_kg_for_t"]))
    assert slips.height > 0
    assert slips.join(flagged, on=["institution_id", "year"], how="anti").is_empty()


@pytest.mark.slow
def test_city_without_defects_has_no_gross_residuals() -> None:
    frame, truth = city(2, defects=False)
    assert truth.is_empty()
    fit = fit_expected_consumption(
        frame,
        "total_energy_tce",
        numeric=["building_area_m2", "occupants"],
        categorical=CITY_CATEGORICAL,
    )
    assert fit.converged and fit.n == frame.height
    assert fit.coefficients["log(building_area_m2)"] == pytest.approx(1.0, abs=0.15)
    out = expected_consumption(
        frame,
        "total_energy_tce",
        numeric=["building_area_m2", "occupants"],
        categorical=CITY_CATEGORICAL,
    )
    assert out["model_studentized"].abs().max() < 6


def test_subsample_fit_agrees_with_the_full_fit_and_keeps_rare_levels() -> None:
    frame, _ = known_model(n=20_000)
    # a rare sector of 60 rows: a 10 % subsample would keep about 6 of them
    rare = np.zeros(frame.height, dtype=bool)
    rare[:60] = True
    frame = frame.with_columns(
        pl.when(pl.Series(rare)).then(pl.lit("museum")).otherwise(pl.col("sector")).alias("sector"),
        pl.when(pl.Series(rare))
        .then(pl.col("energy_kgce") * math.exp(0.6))
        .otherwise(pl.col("energy_kgce")),
    )
    before = frame.clone()
    kwargs = {"numeric": ["area_m2", "occupants"], "categorical": ["sector"]}
    full = fit_expected_consumption(frame, "energy_kgce", **kwargs)
    sub = fit_expected_consumption(frame, "energy_kgce", max_fit_rows=2_000, **kwargs)
    assert set(sub.coefficients) == set(full.coefficients)
    assert sub.coefficients != full.coefficients  # estimated on the subsample, not all rows
    for name, value in full.coefficients.items():
        # 2,000 rows (0.2 robust σ noise): sampling error of a coefficient ≈ 0.2 / √2000 ≈ 0.005
        assert sub.coefficients[name] == pytest.approx(value, abs=0.05), name
    assert "sector[museum]" in sub.coefficients  # the rare level kept all its rows
    assert sub.n == full.n == frame.height  # scale and diagnostics from all rows
    assert sub.scale == pytest.approx(full.scale, rel=0.05)
    again = expected_consumption(frame, "energy_kgce", max_fit_rows=2_000, **kwargs)
    assert_frame_equal(
        again, expected_consumption(frame, "energy_kgce", max_fit_rows=2_000, **kwargs)
    )
    assert frame.equals(before)
    with pytest.raises(SettingsError, match="max_fit_rows 应为正整数") as info:
        fit_expected_consumption(frame, "energy_kgce", max_fit_rows=0, **kwargs)
    assert "max_fit_rows must be a positive integer" in info.value.message_en


# --------------------------------------------------------------------------------------------
# The structured design: sums per cell give the products of the explicit matrix
# --------------------------------------------------------------------------------------------


def explicit(design: regression._Design) -> np.ndarray:
    """The n × p design matrix the structure stands for (one-hot, reference level dropped)."""
    columns = [design.dense]
    for code, size in zip(design.codes, design.sizes, strict=True):
        columns.append(np.eye(size)[code][:, 1:])
    return np.hstack(columns)


@pytest.mark.parametrize(
    ("seed", "sizes"),
    [(0, [3, 5, 2]), (1, [3, 5, 2]), (2, [4]), (3, [110, 100, 100])],  # the last: cells by a sort
)
def test_cell_sums_give_the_explicit_normal_equations_fit_and_leverages(
    seed: int, sizes: list[int]
) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    dense = np.asfortranarray(np.column_stack([np.ones(n), rng.normal(size=(n, 2))]))
    codes = [rng.integers(0, s, n).astype(np.intp) for s in sizes]
    p = 3 + sum(s - 1 for s in sizes)
    design = regression._Design(dense, codes, sizes, np.arange(p, dtype=np.intp))
    x = explicit(design)
    w, y = rng.random(n), rng.normal(size=n)
    gram, rhs = design.normal_equations(w, y)
    np.testing.assert_allclose(gram, x.T @ (w[:, None] * x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rhs, x.T @ (w * y), rtol=1e-12, atol=1e-12)
    beta = rng.normal(size=p)
    np.testing.assert_allclose(design.linear(beta), x @ beta, rtol=1e-12, atol=1e-12)
    a = rng.normal(size=(p, p))
    a = a + a.T
    np.testing.assert_allclose(
        design.quadratic(a), np.einsum("ij,jk,ik->i", x, a, x), rtol=1e-10, atol=1e-10
    )
    part = design.take(np.flatnonzero(rng.random(n) < 0.3))  # its own cells
    xp = explicit(part)
    wp = rng.random(xp.shape[0])
    np.testing.assert_allclose(
        part.normal_equations(wp, np.zeros(xp.shape[0]))[0], xp.T @ (wp[:, None] * xp), atol=1e-12
    )


def test_mad_scale_median_is_numpys() -> None:
    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 10, 65_535, 65_536, 100_001):
        values = np.round(rng.normal(size=n), 3)
        assert regression._numpy_median(values) == np.median(values)
    assert math.isnan(regression._numpy_median(np.array([1.0, np.nan])))
