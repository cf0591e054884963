"""Cell cleaning, one rule at a time (data contract, "Cell values")."""

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energy_audit.io import cells

KWH_UNITS = {"千瓦时": 1.0, "kwh": 1.0, "万千瓦时": 1e4}


def _clean(values, factor=1.0, whole=False, fast_path=True):
    df = pl.DataFrame({"raw": pl.Series(values, dtype=pl.String)})
    spec = cells.NumberColumn("raw", "value", factor, KWH_UNITS, whole)
    return cells.clean_numbers(df, [spec], fast_path=fast_path)


def _number(values, factor=1.0, whole=False):
    outs = [_clean(values, factor, whole, fast) for fast in (True, False)]
    assert outs[0].equals(outs[1])  # the fast path changes nothing
    out = outs[0]
    return out["value"].to_list(), out[cells.reason_column("value")].to_list()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1,234", 1234.0),
        ("1，234", 1234.0),
        ("１２３", 123.0),
        ("  42.5 ", 42.5),
        ("500 千瓦时", 500.0),
        ("500千瓦时", 500.0),
        ("3 万千瓦时", 30000.0),
        ("1.2E+05", 120000.0),
        ("-5", -5.0),  # readable but wrong: kept for verification to report
        ("12,345,678.9", 12345678.9),
        ("\u3000７８\u3000", 78.0),
    ],
)
def test_numbers_are_cleaned(raw, expected):
    values, reasons = _number([raw])
    assert values == [pytest.approx(expected)]
    assert reasons == [None]


@pytest.mark.parametrize("raw", [None, "", "  ", "-", "—", "——", "/", "无", "N/A", "n/a", "－"])
def test_blank_tokens_are_null_without_reason(raw):
    assert _number([raw]) == ([None], [None])


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("约3000", cells.REASON_NOT_A_NUMBER),
        ("abc", cells.REASON_NOT_A_NUMBER),
        ("1,2345", cells.REASON_BAD_UNIT),  # not a thousands grouping: never read as 12345
        ("500 立方米", cells.REASON_BAD_UNIT),  # a unit of another dimension
        ("(123)", cells.REASON_NOT_A_NUMBER),
    ],
)
def test_unreadable_numbers_get_a_reason(raw, reason):
    values, reasons = _number([raw])
    assert values == [None]
    assert reasons == [reason]


@pytest.mark.parametrize("raw", ["1e400", "-1e400", "inf", "-Inf", "Infinity", "nan", "NaN"])
def test_values_that_are_not_finite_get_a_reason(raw):
    assert _number([raw]) == ([None], [cells.REASON_NOT_FINITE])


def test_header_factor_that_overflows_is_not_finite():
    # 1e305 万千瓦时 is 1e309 kWh: beyond a float, so never inf in the data
    assert _number(["1e305"], factor=1e4) == ([None], [cells.REASON_NOT_FINITE])


@pytest.mark.parametrize("raw", [*cells.EXCEL_ERRORS, "#n/a", " #div/0! "])
def test_excel_error_values_get_a_reason(raw):
    assert _number([raw]) == ([None], [cells.REASON_EXCEL_ERROR])
    df = pl.DataFrame({"raw": [raw]})
    for clean in (cells.year, cells.boolean):
        value, reason = clean(pl.col("raw"))
        assert df.select(value, reason.alias("r")).row(0) == (None, cells.REASON_EXCEL_ERROR)


def test_na_is_an_error_value_not_a_blank():
    assert not pl.DataFrame({"raw": ["#N/A"]}).select(cells.is_blank(pl.col("raw"))).item()


@pytest.mark.parametrize("raw", ["99999999999999999999", "1e20", "-1e20", "9223372036854775808"])
def test_whole_numbers_beyond_int64_get_a_reason(raw):
    assert _number([raw], whole=True) == ([None], [cells.REASON_OUT_OF_RANGE])


def test_whole_numbers_written_as_digits_are_exact():
    # 2^53 + 1 and the Int64 limit: a float would round them; the file's digits are kept
    values, reasons = _number(
        ["9007199254740993", "9,223,372,036,854,775,807", "-9223372036854775807"], whole=True
    )
    assert values == [9007199254740993, 9223372036854775807, -9223372036854775807]
    assert reasons == [None] * 3
    # through a float (exponent) only below 2^53
    assert _number(["1e15", "9.1e15"], whole=True) == (
        [10**15, None],
        [None, cells.REASON_OUT_OF_RANGE],
    )


def test_every_reason_is_in_the_glossary():
    from energy_audit.glossary import terms

    for lang in ("zh", "en"):
        assert set(cells.REASONS) <= set(terms("reason", lang))


def test_header_factor_applies_to_bare_numbers_only():
    values, _ = _number(["12.5", "500 千瓦时"], factor=1e4)
    assert values == [125000.0, 500.0]


def test_whole_numbers():
    values, reasons = _number(["300", "300.0", "12.5"], whole=True)
    assert values == [300, 300, None]
    assert reasons == [None, None, cells.REASON_NOT_WHOLE]


def test_year_forms():
    df = pl.DataFrame({"raw": ["2023", "2023.0", "2023年", "２０２３年度", "去年", None]})
    value, reason = cells.year(pl.col("raw"))
    out = df.select(value.alias("v"), reason.alias("r"))
    assert out["v"].to_list() == [2023, 2023, 2023, 2023, None, None]
    assert out["r"].to_list() == [None] * 4 + [cells.REASON_NOT_A_YEAR, None]


def test_boolean_labels():
    df = pl.DataFrame({"raw": ["是", "否", "Y", "n", "TRUE", "0", "也许", ""]})
    value, reason = cells.boolean(pl.col("raw"))
    out = df.select(value.alias("v"), reason.alias("r"))
    assert out["v"].to_list() == [True, False, True, False, True, False, None, None]
    assert out["r"].to_list() == [None] * 6 + [cells.REASON_NOT_BOOLEAN, None]


def test_labels_map_to_codes_and_unknown_labels_are_kept():
    df = pl.DataFrame({"raw": ["事业单位", " 机关 ", "商业企业", "—", "无"]})
    mapping = {"事业单位": "public_service_unit", "机关": "agency", "无": "none"}
    out = df.select(cells.label(pl.col("raw"), mapping).alias("v"))["v"].to_list()
    assert out == ["public_service_unit", "agency", "商业企业", None, "none"]


def test_credit_code_normalisation():
    df = pl.DataFrame(
        {"raw": ["１２１０００００-０００ 0１８０３２ａ", " 11100000000013338w ", "-"]}
    )
    out = df.select(cells.credit_code(pl.col("raw")).alias("v"))["v"].to_list()
    assert out == ["12100000000018032A", "11100000000013338W", None]


numberish = st.one_of(
    st.text(alphabet="0123456789+-.,eE 　１２，千瓦时万kwhinfa", max_size=10),
    st.from_regex(r"[+-]?\d{1,7}(\.\d{0,3})?([eE][+-]?\d{1,2})?", fullmatch=True),
    st.sampled_from(
        ["inf", "-inf", "nan", "NaN", "1.", ".5", "+5", "1e400", " 12", "12 ", "#N/A", "1e20"]
    ),
    st.integers(min_value=-(2**64), max_value=2**64).map(str),
    st.none(),
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(numberish, min_size=1, max_size=20),
    whole=st.booleans(),
    factor=st.sampled_from([1.0, 10.0]),
)
def test_fast_path_agrees_with_the_full_rules(values, whole, factor):
    fast = _clean(values, factor=factor, whole=whole, fast_path=True)
    full = _clean(values, factor=factor, whole=whole, fast_path=False)
    assert fast.equals(full)
    assert fast.height == len(values)
    assert fast["raw"].to_list() == values  # order kept, input column untouched
    assert fast["value"].cast(pl.Float64).is_infinite().sum() == 0  # nothing infinite gets in
    assert fast["value"].cast(pl.Float64).is_nan().sum() == 0


def test_unit_of_own_is_flagged():
    out = _clean(["500 千瓦时", "12", "3 万千瓦时", "约3"], fast_path=True)
    assert out[cells.own_unit_column("value")].to_list() == [True, False, True, False]
