import copy

import matplotlib

matplotlib.use("Agg")  # only for the test that hands in pyplot axes, as a notebook user would

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import pytest
from matplotlib.figure import Figure

from energy_audit.errors import EnergyAuditError, UnusableInputError
from energy_audit.findings import Rule, evidence_struct, findings_from_hits
from energy_audit.panel.evidence import (
    COPY_COLUMNS,
    MAX_IDENTICAL_SHOWN,
    TITLE_WRAP_CHARS,
    plot_finding,
    plot_history,
    plot_identical_returns,
    plot_peer_distribution,
    write_evidence,
)
from energy_audit.verify.statistical import check_statistical, evidence_data

VALUE = "energy_per_m2_kgce"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# 2023: eleven tertiary hospitals (X reported 4,500 kgce/m², a ×100 slip of 45), two hospitals
# without subsector, three schools. Sorted, the tertiary group is 30 … 60, 4500: median 45.
TERTIARY_2023 = {
    "H01": 30.0,
    "H02": 35.0,
    "H03": 38.0,
    "H04": 40.0,
    "H05": 42.0,
    "H06": 45.0,
    "H07": 48.0,
    "H08": 50.0,
    "H09": 55.0,
    "H10": 60.0,
    "X": 4500.0,
}
OTHER_HOSPITALS_2023 = {"H20": 70.0, "H21": 80.0}
SCHOOLS_2023 = {"S01": 10.0, "S02": 12.0, "S03": 15.0}
X_HISTORY = {2019: 43.0, 2020: 46.0, 2021: 44.0, 2022: 45.0, 2023: 4500.0}


def _returns() -> pl.DataFrame:
    rows = []
    for values, sector, subsector in (
        (TERTIARY_2023, "hospital", "三级医院"),
        (OTHER_HOSPITALS_2023, "hospital", None),
        (SCHOOLS_2023, "school", None),
    ):
        for iid, v in values.items():
            rows.append((iid, 2023, sector, subsector, v))
            if iid != "X":
                rows.append((iid, 2022, sector, subsector, v * 1.02))
    rows += [(("X", y, "hospital", "三级医院", v)) for y, v in X_HISTORY.items() if y < 2023]
    return pl.DataFrame(
        rows,
        schema={
            "institution_id": pl.String,
            "year": pl.Int32,
            "sector": pl.String,
            "subsector": pl.String,
            VALUE: pl.Float64,
        },
        orient="row",
    )


FINDING = {
    "finding_id": "STA-001-0123456789ab",
    "rule_id": "STA-001",
    "category": "statistical",
    "severity": "warning",
    "institution_id": "X",
    "year": 2023,
    "field": VALUE,
    "value": 4500.0,
    "expected_low": 15.0,
    "expected_high": 135.0,
    "suggested_value": 45.0,
    "priority": 0.95,
    "message_zh": (
        "单位建筑面积能耗 4,500 千克标准煤/平方米，为同类中位数 45 的 100 倍，"
        "疑似单位错误，建议值 45。"
    ),
    "message_en": "Energy per m² 4,500 kgce is 100 times the peer median 45.",
    "source_file": "returns_2023.xlsx",
    "source_row": 14,
    # as energy_audit.verify.statistical._peer writes it: the finest group, its median 45
    "evidence": {
        "method": "peer",
        "peer_keys": ["year", "sector", "subsector"],
        "peer_values": ["2023", "hospital", "三级医院"],
        "peer_level": 0,
        "peer_size": 11,
        "median": 45.0,
        "previous_value": 45.0,
        "previous_year": 2022,
    },
}

# A finding written before findings carried evidence (or a rule finding): drawn from the data.
OLD_FINDING = {k: v for k, v in FINDING.items() if k != "evidence"}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _by_gid(ax, gid):
    return [artist for artist in ax.get_children() if artist.get_gid() == gid]


def _xspan(patch):
    return patch.get_x(), patch.get_x() + patch.get_width()


def _yspan(patch):
    return patch.get_y(), patch.get_y() + patch.get_height()


def _line(ax, gid):
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == gid]
    return line


def _assert_png(fig: Figure, path) -> None:
    fig.savefig(path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 5_000


def _peers_2023() -> pl.DataFrame:
    return _returns().filter(pl.col("year") == 2023, pl.col("subsector") == "三级医院")


# --------------------------------------------------------------------------- peer distribution


def test_peer_distribution_marks_the_institution_median_and_band(tmp_path):
    peers = _peers_2023()
    before = peers.clone()
    fig = plot_peer_distribution(peers, VALUE, "X", band=(15.0, 135.0))
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert list(_line(ax, "institution").get_xdata()) == [4500.0, 4500.0]
    assert list(_line(ax, "peer_median").get_xdata()) == [45.0, 45.0]
    assert sorted(_line(ax, "peer_values").get_xdata()) == sorted(TERTIARY_2023.values())
    (band,) = _by_gid(ax, "band")
    assert _xspan(band) == (15.0, 135.0)
    # every peer is counted once in the histogram
    assert sum(p.get_height() for p in _by_gid(ax, "peers")) == len(TERTIARY_2023)
    assert any("本单位" in t.get_text() and "4,500" in t.get_text() for t in ax.texts)
    assert ax.get_xlabel().startswith("单位建筑面积能耗(千克标准煤/平方米)")
    assert ax.get_ylabel() == "单位数（家）"
    assert ax.get_title() == "同类单位分布"
    assert ax.get_xlim()[0] < 15.0 and ax.get_xlim()[1] > 4500.0
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "同类中位数 45.0" in legend and "合理范围 15.0–135.0" in legend
    _assert_png(fig, tmp_path / "peers.png")
    assert peers.equals(before)


def test_peer_distribution_accepts_a_lazyframe_and_given_axes(tmp_path):
    fig, (left, right) = plt.subplots(1, 2)
    out = plot_peer_distribution(
        _peers_2023().lazy(), VALUE, "H03", ax=right, log=False, title="三级医院"
    )
    assert out is fig
    assert len(fig.axes) == 2
    assert right.get_xscale() == "linear" and not left.has_data()
    assert list(_line(right, "institution").get_xdata()) == [38.0, 38.0]
    assert right.get_title() == "三级医院"
    assert not _by_gid(right, "band")
    _assert_png(fig, tmp_path / "axes.png")


def test_peer_distribution_counts_values_a_log_axis_cannot_show():
    peers = pl.DataFrame(
        {
            "institution_id": ["A", "B", "C", "D", "E"],
            VALUE: [0.0, -1.0, 20.0, 30.0, None],
        }
    )
    ax = plot_peer_distribution(peers, VALUE, "C").axes[0]
    assert ax.get_xscale() == "log"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "另有 2 家数值≤0，未在对数坐标上显示" in legend
    assert "同类单位（4 家）" in legend  # the null is not a peer value
    # the institution's own zero cannot sit on a log axis: the axis is linear
    ax = plot_peer_distribution(peers, VALUE, "A").axes[0]
    assert ax.get_xscale() == "linear"
    assert list(_line(ax, "institution").get_xdata()) == [0.0, 0.0]


def test_peer_distribution_with_an_open_band_and_a_suggestion():
    ax = plot_peer_distribution(_peers_2023(), VALUE, "X", band=(None, 135.0), suggested=45.0).axes[
        0
    ]
    (band,) = _by_gid(ax, "band")
    assert _xspan(band)[1] == 135.0
    assert _xspan(band)[0] == pytest.approx(ax.get_xlim()[0])
    assert list(_line(ax, "suggested").get_xdata()) == [45.0, 45.0]


def test_peer_distribution_errors_name_the_problem():
    peers = _peers_2023()
    with pytest.raises(UnusableInputError, match=r"institution 'NOPE' has no value"):
        plot_peer_distribution(peers, VALUE, "NOPE")
    with pytest.raises(UnusableInputError, match=r"no column 'water_m3'"):
        plot_peer_distribution(peers, "water_m3", "X")
    with pytest.raises(UnusableInputError, match=r"'sector' is String, not numeric"):
        plot_peer_distribution(peers, "sector", "X")


# --------------------------------------------------------------------------- history


def test_history_draws_the_years_and_highlights_the_current_one(tmp_path):
    history = _returns()
    before = history.clone()
    fig = plot_history(history, VALUE, "X", suggested=45.0, expected=(15.0, 135.0))
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    line = _line(ax, "history")
    assert list(line.get_xdata()) == list(X_HISTORY)
    assert list(line.get_ydata()) == list(X_HISTORY.values())
    current = _line(ax, "current_value")
    assert (list(current.get_xdata()), list(current.get_ydata())) == ([2023.0], [4500.0])
    assert list(_line(ax, "suggested").get_ydata()) == [45.0]
    (span,) = _by_gid(ax, "current_year")
    assert _xspan(span)[0] < 2023 < _xspan(span)[1]
    (band,) = _by_gid(ax, "band")
    assert _yspan(band) == (15.0, 135.0)
    assert ax.get_yscale() == "log"  # 4,500 / 43 > 100: a slip flattens a linear axis
    assert ax.get_xlabel() == "统计年度"
    assert ax.get_ylabel() == "单位建筑面积能耗\n(千克标准煤/平方米)，对数坐标"
    assert ax.get_title() == "历年数据"
    _assert_png(fig, tmp_path / "history.png")
    assert history.equals(before)


def test_history_gap_for_a_missing_year_and_chosen_current_year():
    history = pl.DataFrame(
        {
            "institution_id": ["A"] * 4 + ["B"],
            "yr": [2020, 2021, 2022, 2023, 2022],
            "water_m3": [1000.0, None, 1100.0, 1050.0, 9.0],
        }
    )
    ax = plot_history(history, "water_m3", "A", year="yr", current_year=2022).axes[0]
    ys = _line(ax, "history").get_ydata()
    assert np.isnan(ys[1]) and list(ys[[0, 2, 3]]) == [1000.0, 1100.0, 1050.0]
    assert list(_line(ax, "current_value").get_ydata()) == [1100.0]
    assert ax.get_yscale() == "linear"
    assert ax.get_ylabel() == "水\n(立方米)"
    assert not _by_gid(ax, "suggested") and not _by_gid(ax, "band")


def test_history_without_positive_values_is_linear_even_if_log_is_asked():
    history = pl.DataFrame({"institution_id": ["A", "A"], "year": [2022, 2023], VALUE: [-1.0, 0.0]})
    ax = plot_history(history, VALUE, "A", log=True).axes[0]
    assert ax.get_yscale() == "linear"
    assert list(_line(ax, "history").get_ydata()) == [-1.0, 0.0]


def test_history_errors_name_the_problem():
    with pytest.raises(UnusableInputError, match=r"no row of institution 'NOPE'"):
        plot_history(_returns(), VALUE, "NOPE")
    with pytest.raises(UnusableInputError, match=r"history has no column 'fiscal_year'"):
        plot_history(_returns(), VALUE, "X", year="fiscal_year")


# --------------------------------------------------------------------------- one finding


def test_finding_draws_both_panels_under_its_message(tmp_path):
    returns = _returns()
    before_returns, before_finding = returns.clone(), copy.deepcopy(FINDING)
    fig = plot_finding(FINDING, returns)
    assert len(fig.axes) == 2
    peers_ax, history_ax = fig.axes
    assert list(_line(peers_ax, "institution").get_xdata()) == [4500.0, 4500.0]
    assert list(_line(peers_ax, "peer_median").get_xdata()) == [45.0, 45.0]
    assert list(_line(peers_ax, "suggested").get_xdata()) == [45.0, 45.0]
    assert peers_ax.get_title() == "同类单位分布（医疗卫生机构 / 三级医院，2023年）"
    assert list(_line(history_ax, "history").get_ydata()) == list(X_HISTORY.values())
    assert list(_line(history_ax, "current_value").get_xdata()) == [2023.0]
    assert [_xspan(b) for b in _by_gid(peers_ax, "band")] == [(15.0, 135.0)]
    assert [_yspan(b) for b in _by_gid(history_ax, "band")] == [(15.0, 135.0)]
    # wrapped after punctuation, so a number and its unit stay on one line
    lines = fig.get_suptitle().split("\n")
    assert "".join(lines) == "STA-001：" + FINDING["message_zh"]
    assert len(lines) == 2 and all(len(line) <= TITLE_WRAP_CHARS for line in lines)
    assert lines[0].endswith("，")
    assert peers_ax.get_xlabel().startswith("单位建筑面积能耗(千克标准煤/平方米)")
    _assert_png(fig, tmp_path / "finding.png")
    assert returns.equals(before_returns)
    assert before_finding == FINDING


def test_finding_from_a_findings_table_row():
    rule = Rule("STA-001", "statistical", "warning", "同类比较异常", "Peer outlier")
    hits = pl.DataFrame([{k: v for k, v in FINDING.items() if k not in {"finding_id"}}])
    findings = findings_from_hits(rule, hits.drop("rule_id", "category", "severity"))
    before = findings.clone()
    fig = plot_finding(findings, _returns().lazy())
    assert list(_line(fig.axes[0], "institution").get_xdata()) == [4500.0, 4500.0]
    assert fig.get_suptitle().startswith("STA-001：单位建筑面积能耗")
    assert findings.equals(before)
    with pytest.raises(EnergyAuditError, match="one finding: got a frame of 2 rows"):
        plot_finding(pl.concat([findings, findings]), _returns())


def test_without_evidence_small_peer_groups_borrow_from_their_parent():
    # the fallback: 11 tertiary hospitals; 13 hospitals; 16 institutions in 2023
    for finding in (OLD_FINDING, {**FINDING, "evidence": None}, _rule_evidence(FINDING)):
        ax = plot_finding(finding, _returns()).axes[0]
        assert ax.get_title() == "同类单位分布（医疗卫生机构 / 三级医院，2023年）"
        assert list(_line(ax, "peer_median").get_xdata()) == [45.0, 45.0]  # of the group drawn
        title = plot_finding(finding, _returns(), min_group_size=12).axes[0].get_title()
        assert title == "同类单位分布（医疗卫生机构，2023年）"
    ax = plot_finding(OLD_FINDING, _returns(), min_group_size=20).axes[0]
    assert ax.get_title() == "同类单位分布（全部单位，2023年）"
    assert sum(p.get_height() for p in _by_gid(ax, "peers")) == 16
    ax = plot_finding(OLD_FINDING, _returns(), peer_groups=()).axes[0]
    assert ax.get_title() == "同类单位分布（全部单位，2023年）"
    # no previous return is ringed: the history line shows it
    assert not _by_gid(plot_finding(OLD_FINDING, _returns()).axes[1], "previous_value")


def _rule_evidence(finding):
    """A finding ranked by verify.queue: its evidence has the method ``rule`` only."""
    return {**finding, "evidence": {"method": "rule", "p": 0.01}}


def _with_evidence(finding, **evidence):
    return {**finding, "evidence": {**finding["evidence"], **evidence}}


def _peer_ticks(ax) -> list[float]:
    return sorted(_line(ax, "peer_values").get_xdata())


@pytest.mark.parametrize(
    ("keys", "values", "members", "group_zh"),
    [
        (
            ["year", "sector", "subsector"],
            ["2023", "hospital", "三级医院"],
            TERTIARY_2023,
            "医疗卫生机构 / 三级医院",
        ),
        (
            ["year", "sector"],
            ["2023", "hospital"],
            TERTIARY_2023 | OTHER_HOSPITALS_2023,
            "医疗卫生机构",
        ),
        (["year"], ["2023"], TERTIARY_2023 | OTHER_HOSPITALS_2023 | SCHOOLS_2023, "全部单位"),
    ],
)
def test_finding_draws_the_peer_group_its_evidence_names(keys, values, members, group_zh):
    finding = _with_evidence(
        FINDING, peer_keys=keys, peer_values=values, peer_level=3 - len(keys), median=47.5
    )
    # min_group_size would choose another group: the evidence decides, not the chart
    ax = plot_finding(finding, _returns(), min_group_size=1_000).axes[0]
    assert _peer_ticks(ax) == sorted(members.values())
    assert sum(p.get_height() for p in _by_gid(ax, "peers")) == len(members)
    assert ax.get_title() == f"同类单位分布（{group_zh}，2023年）"
    # the median the statistic used, not the median of the rows drawn
    assert list(_line(ax, "peer_median").get_xdata()) == [47.5, 47.5]
    assert "同类中位数 47.5" in _legend(ax)
    assert [_xspan(b) for b in _by_gid(ax, "band")] == [(15.0, 135.0)]


def test_finding_peer_group_compares_values_as_text_and_matches_nulls():
    # year is an integer column, peer_values text; a null subsector is its own group
    finding = _with_evidence(
        {**FINDING, "institution_id": "H20", "value": 70.0},
        peer_keys=["year", "sector", "subsector"],
        peer_values=["2023", "hospital", None],
    )
    ax = plot_finding(finding, _returns()).axes[0]
    assert _peer_ticks(ax) == sorted(OTHER_HOSPITALS_2023.values())
    assert ax.get_title() == "同类单位分布（医疗卫生机构，2023年）"
    with pytest.raises(UnusableInputError, match=r"'X' is not in the peer group .*sector=school"):
        plot_finding(_with_evidence(FINDING, peer_values=["2023", "school", None]), _returns())
    with pytest.raises(EnergyAuditError, match=r"3 peer keys .* but 2 values"):
        plot_finding(_with_evidence(FINDING, peer_values=["2023", "hospital"]), _returns())
    with pytest.raises(UnusableInputError, match=r"no column 'district_code'"):
        plot_finding(
            _with_evidence(FINDING, peer_keys=["district_code"], peer_values=["1"]), _returns()
        )


def test_finding_history_rings_the_return_its_evidence_compared_with():
    finding = _with_evidence(FINDING, previous_value=44.0, previous_year=2021)
    ax = plot_finding(finding, _returns()).axes[1]
    ring = _line(ax, "previous_value")
    assert (list(ring.get_xdata()), list(ring.get_ydata())) == ([2021], [44.0])
    assert "上次填报（2021年）44.0" in _legend(ax)
    finding = _with_evidence(FINDING, previous_value=45.0, previous_year=2022)
    assert "上年（2022年）45.0" in _legend(plot_finding(finding, _returns()).axes[1])


def test_model_and_change_findings_mark_their_centre_where_it_belongs():
    # STA-004: the model's expectation on the peer panel (no peer group: drawn from the data)
    model = {
        **FINDING,
        "rule_id": "STA-004",
        "evidence": {"method": "model", "median": 52.0, "peer_size": 16},
    }
    peers_ax, history_ax = plot_finding(model, _returns()).axes
    assert list(_line(peers_ax, "peer_median").get_xdata()) == [52.0, 52.0]
    assert "模型预期值 52.0" in _legend(peers_ax)
    assert peers_ax.get_title() == "同类单位分布（医疗卫生机构 / 三级医院，2023年）"
    assert not _by_gid(history_ax, "expected_value")
    # STA-006: last year times the year's median change, in the history panel
    change = {
        **FINDING,
        "rule_id": "STA-006",
        "evidence": {
            "method": "yoy",
            "median": 46.1,
            "previous_value": 45.0,
            "previous_year": 2022,
        },
    }
    peers_ax, history_ax = plot_finding(change, _returns()).axes
    cross = _line(history_ax, "expected_value")
    assert (list(cross.get_xdata()), list(cross.get_ydata())) == ([2023], [46.1])
    assert "按上年变化推算 46.1" in _legend(history_ax)
    assert list(_line(peers_ax, "peer_median").get_xdata()) == [45.0, 45.0]  # the group drawn


def test_slip_finding_shows_its_factor_and_suggested_value():
    slip = {
        **FINDING,
        "rule_id": "STA-005",
        "suggested_value": 45.0,
        "evidence": {
            "method": "slips",
            "slip_factor": 100.0,
            "window_half_width": 0.1,
            "previous_value": 45.0,
            "previous_year": 2022,
        },
    }
    fig = plot_finding(slip, _returns())
    for ax in fig.axes:
        assert list(_line(ax, "suggested").get_ydata() if ax is fig.axes[1] else [45.0]) == [45.0]
        assert "建议值 45.0（疑似单位错误，填报值 ÷ 100）" in _legend(ax)
    rec = {**slip, "evidence": {"method": "reconciliation", "slip_factor": 0.73}}
    assert "建议值 45.0（疑似单位错误，填报值 ÷ 0.73）" in _legend(
        plot_finding(rec, _returns()).axes[1]
    )
    # a suggestion without a factor keeps its plain label
    assert "建议值 45.0" in _legend(plot_finding(FINDING, _returns()).axes[1])


def test_finding_with_separate_history_and_without_band_or_suggestion():
    finding = {**FINDING, "expected_low": None, "expected_high": None, "suggested_value": None}
    history = _returns().filter(pl.col("institution_id") == "X").drop("sector", "subsector")
    fig = plot_finding(finding, _returns().filter(pl.col("year") == 2023), history=history)
    for ax in fig.axes:
        assert not _by_gid(ax, "band") and not _by_gid(ax, "suggested")
    assert len(_line(fig.axes[1], "history").get_xdata()) == len(X_HISTORY)


def test_finding_errors_name_the_problem():
    with pytest.raises(EnergyAuditError, match=r"names no field and no year"):
        plot_finding({**FINDING, "field": None, "year": None}, _returns())
    with pytest.raises(EnergyAuditError, match=r"names no institution"):
        plot_finding({**FINDING, "institution_id": None}, _returns())
    with pytest.raises(UnusableInputError, match=r"no column 'water_m3'"):
        plot_finding({**FINDING, "field": "water_m3"}, _returns())
    with pytest.raises(UnusableInputError, match=r"no row of institution 'X' in 2024"):
        plot_finding({**FINDING, "year": 2024}, _returns())
    with pytest.raises(UnusableInputError, match=r"no column 'district_code'"):
        plot_finding(OLD_FINDING, _returns(), peer_groups=("district_code",))


# --------------------------------------------------------------------------- identical returns

# Columns of the copy rules in the test frame; coal_t is null in every return.
COPY = (
    "electricity_kwh",
    "natural_gas_m3",
    "coal_t",
    "heat_gj",
    "water_m3",
    "electricity_cost_yuan",
    "water_cost_yuan",
)
# A copied 2022 into 2023 (STA-007); B and C, units of parent P, reported identical figures in
# 2023 (STA-008); D differs from them by one cubic metre of water; E has zeros and nulls.
A_RETURN = (81_234.0, 12_345.0, None, 0.0, 2_345.0, 65_432.1, 9_876.5)
B_RETURN = (95_871.0, 3_210.0, None, 456.7, 1_876.0, 76_543.2, 7_890.0)
D_RETURN = (95_871.0, 3_210.0, None, 456.7, 1_877.0, 76_543.2, 7_890.0)
E_2023 = (50_321.0, 0.0, None, 300.0, None, None, None)
E_2022 = (48_000.0, 1_500.0, None, None, 900.0, None, None)
IDENTICAL_RETURNS = [
    ("A", 2022, "P0", A_RETURN),
    ("A", 2023, "P0", A_RETURN),
    ("B", 2022, "P", (93_000.0, 3_100.0, None, 0.0, 1_800.0, 74_000.0, 7_600.0)),
    ("B", 2023, "P", B_RETURN),
    ("C", 2022, "P", (97_500.0, 3_300.0, None, 470.0, 1_900.0, 78_000.0, 8_000.0)),
    ("C", 2023, "P", B_RETURN),
    ("D", 2022, "P", (90_000.0, 3_000.0, None, 440.0, 1_850.0, 72_000.0, 7_700.0)),
    ("D", 2023, "P", D_RETURN),
    ("E", 2022, "P0", E_2022),
    ("E", 2023, "P0", E_2023),
]

COPIED_FINDING = {
    **FINDING,
    "finding_id": "STA-007-0123456789ab",
    "rule_id": "STA-007",
    "institution_id": "A",
    "field": None,
    "value": 81_234.0,
    "expected_low": None,
    "expected_high": None,
    "suggested_value": None,
    "message_zh": "各项数量与费用与上年（2022）完全相同，如电力 81,234 kWh、水 2,345 m³",
    "evidence": {"method": "copies", "previous_value": 81_234.0, "previous_year": 2022},
}
SIBLING_FINDING = {
    **COPIED_FINDING,
    "finding_id": "STA-008-0123456789ab",
    "rule_id": "STA-008",
    "institution_id": "C",
    "message_zh": "各项数量与费用与同一上级单位的 B 完全相同",
    "evidence": {
        "method": "siblings",
        "peer_keys": ["parent_id"],
        "peer_values": ["P"],
        "peer_size": 3,
        "related_ids": ["B"],
    },
}


def _identical_returns() -> pl.DataFrame:
    return pl.DataFrame(
        [(iid, yr, parent, *values) for iid, yr, parent, values in IDENTICAL_RETURNS],
        schema={
            "institution_id": pl.String,
            "year": pl.Int32,
            "parent_id": pl.String,
            **dict.fromkeys(COPY, pl.Float64),
        },
        orient="row",
    )


def _bars(ax) -> dict[str, list[float]]:
    """Bar heights of each return drawn, by legend label."""
    return {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers}


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _drawn(values) -> list[float]:
    """The values of a return drawn as bars: those > 0 of the columns some return has."""
    return [v for v in values if v is not None and v > 0]


def test_identical_returns_show_a_copy_of_last_year(tmp_path):
    returns = _identical_returns()
    before = returns.clone()
    fig = plot_identical_returns(returns, "A", 2023, COPY)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    bars = _bars(ax)
    assert list(bars) == ["本单位 2023年", "本单位 2022年（上年）"]
    assert bars["本单位 2023年"] == bars["本单位 2022年（上年）"] == _drawn(A_RETURN)
    assert _legend(ax) == [*bars, "另有 2 项均为 0 或未填报，未画出"]  # coal null, heat zero
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["电\n(千瓦时)", "天然气\n(立方米)", "水\n(立方米)", "电费\n(元)", "水费\n(元)"]
    # each pair of bars sits over its quantity, the own return left of last year's
    own, last = ax.containers
    for i, (p, q) in enumerate(zip(own.patches, last.patches, strict=True)):
        assert p.get_x() < i < q.get_x() + q.get_width()
    labels = [t.get_text() for t in ax.texts if t.get_gid() == "value_label"]
    assert labels == ["81,234", "12,345", "2,345", "65,432", "9,876"]
    assert ax.get_ylim()[0] < 2_345.0 and ax.get_ylim()[1] > 81_234.0
    assert ax.yaxis.get_major_formatter()(100_000.0, 0) == "100,000"
    assert ax.get_title() == "填报值对比（2023年）"
    assert ax.get_ylabel() == "填报值\n(单位见横轴，对数坐标)"
    _assert_png(fig, tmp_path / "copy.png")
    assert returns.equals(before)


def test_identical_returns_show_siblings_of_the_same_year_only(tmp_path):
    returns = _identical_returns()
    history = returns.filter(pl.col("year") == 2022).lazy()
    before = returns.clone()
    fig, (left, right) = plt.subplots(1, 2)
    out = plot_identical_returns(
        returns.lazy(), "B", 2023, COPY, history=history, ax=right, title="同一上级单位"
    )
    assert out is fig and not left.has_data()
    bars = _bars(right)
    assert list(bars) == ["本单位 2023年", "本单位 2022年（上年）", "C（同年）"]
    assert bars["C（同年）"] == bars["本单位 2023年"] == _drawn(B_RETURN)
    assert not any(label.startswith("D") for label in _legend(right))  # one m³ of water apart
    # last year's heat was 0: no bar, a "0" in its slot
    assert [t.get_text() for t in right.texts if t.get_gid() == "no_bar"] == ["0"]
    assert right.get_title() == "同一上级单位"
    _assert_png(fig, tmp_path / "sibling.png")
    assert returns.equals(before)
    # D is compared too, but B and C are not identical to it
    assert list(_bars(plot_identical_returns(returns, "D", 2023, COPY).axes[0])) == [
        "本单位 2023年",
        "本单位 2022年（上年）",
    ]


def test_identical_returns_zeros_and_nulls_are_not_bars():
    returns = _identical_returns()
    ax = plot_identical_returns(returns, "E", 2023, COPY).axes[0]
    # electricity, gas (0 in 2023), heat (null in 2022), water (null in 2023) are drawn
    ticks = [t.get_text().split("\n")[0] for t in ax.get_xticklabels()]
    assert ticks == ["电", "天然气", "热力", "水"]
    bars = _bars(ax)
    assert bars == {
        "本单位 2023年": [50_321.0, 300.0],
        "本单位 2022年（上年）": [48_000.0, 1_500.0, 900.0],
    }
    assert all(p.get_height() > 0 for c in ax.containers for p in c.patches)
    assert sorted(t.get_text() for t in ax.texts if t.get_gid() == "no_bar") == ["0", "—", "—"]
    assert "另有 3 项均为 0 或未填报，未画出" in _legend(ax)
    # returns of zeros only are not identical to each other; a last return two years back
    zeros = pl.DataFrame(
        {
            "institution_id": ["F", "F", "G"],
            "year": [2021, 2023, 2023],
            "electricity_kwh": [7_000.0, 0.0, 0.0],
            "water_m3": [None, 0.0, 0.0],
        }
    )
    ax = plot_identical_returns(zeros, "F", 2023, ["electricity_kwh", "water_m3"]).axes[0]
    assert _bars(ax) == {"本单位 2023年": [], "本单位 2021年（上次填报）": [7_000.0]}
    assert [t.get_text() for t in ax.texts if t.get_gid() == "no_bar"] == ["0"]
    with pytest.raises(UnusableInputError, match=r"no return compared .* value > 0"):
        plot_identical_returns(zeros, "G", 2023, ["electricity_kwh", "water_m3"])


def test_identical_returns_beyond_the_most_shown_are_counted():
    n = MAX_IDENTICAL_SHOWN + 2
    ids = [f"U{i}" for i in range(n + 1)]
    returns = pl.DataFrame(
        {
            "institution_id": ids,
            "year": [2023] * (n + 1),
            "electricity_kwh": [12_345.0] * (n + 1),
            "water_m3": [678.0] * (n + 1),
        }
    )
    ax = plot_identical_returns(returns, "U0", 2023, ["electricity_kwh", "water_m3"]).axes[0]
    assert list(_bars(ax))[1:] == [f"{iid}（同年）" for iid in ids[1 : MAX_IDENTICAL_SHOWN + 1]]
    assert _legend(ax)[-1] == "及另 2 家同年数值相同"


def test_identical_returns_errors_name_the_problem():
    returns = _identical_returns()
    with pytest.raises(UnusableInputError, match=r"no row of institution 'A' in 2024"):
        plot_identical_returns(returns, "A", 2024, COPY)
    with pytest.raises(UnusableInputError, match=r"returns has no column 'lpg_kg'"):
        plot_identical_returns(returns, "A", 2023, [*COPY, "lpg_kg"])
    with pytest.raises(UnusableInputError, match=r"'parent_id' is String, not numeric"):
        plot_identical_returns(returns, "A", 2023, ["parent_id"])
    with pytest.raises(UnusableInputError, match=r"history has no column 'water_m3'"):
        plot_identical_returns(returns, "A", 2023, COPY, history=returns.drop("water_m3"))
    with pytest.raises(EnergyAuditError, match=r"no column to compare"):
        plot_identical_returns(returns, "A", 2023, [])


def test_finding_without_a_field_compares_the_return(tmp_path):
    returns = _identical_returns()
    before_returns, before_finding = returns.clone(), copy.deepcopy(COPIED_FINDING)
    fig = plot_finding(COPIED_FINDING, returns.lazy())
    assert len(fig.axes) == 1
    # the title is the message with its units in Chinese, as on the axes
    assert fig.get_suptitle() == (
        "STA-007：各项数量与费用与上年（2022）完全相同，如电力 81,234 千瓦时、水 2,345 立方米"
    )
    bars = _bars(fig.axes[0])
    assert bars["本单位 2023年"] == bars["本单位 2022年（上年）"] == _drawn(A_RETURN)
    _assert_png(fig, tmp_path / "copied.png")
    assert returns.equals(before_returns)
    assert before_finding == COPIED_FINDING
    # a sibling finding from the findings table, with a separate history
    findings = pl.DataFrame([SIBLING_FINDING]).with_columns(
        evidence_struct(pl.Series("evidence", [SIBLING_FINDING["evidence"]]))
    )
    history = returns.filter(pl.col("year") == 2022)
    fig = plot_finding(findings, returns.filter(pl.col("year") == 2023), history=history)
    assert fig.get_suptitle().startswith("STA-008：")
    assert list(_bars(fig.axes[0])) == ["本单位 2023年", "本单位 2022年（上年）", "B（同年）"]


def test_finding_without_a_field_needs_the_quantities():
    assert set(COPY) <= set(COPY_COLUMNS)
    returns = _identical_returns().drop(COPY)
    with pytest.raises(UnusableInputError, match=r"none of the columns electricity_kwh"):
        plot_finding(COPIED_FINDING, returns)
    with pytest.raises(UnusableInputError, match=r"no row of institution 'A' in 2024"):
        plot_finding({**COPIED_FINDING, "year": 2024}, _identical_returns())


def test_write_evidence_draws_the_top_returns_and_says_why_not(tmp_path):
    data = pl.DataFrame(
        {
            "institution_id": ["A", "B", "C", "D", "E", "A"],
            "year": [2024, 2024, 2024, 2024, 2024, 2023],
            "sector": ["school"] * 6,
            "subsector": [None] * 6,
            "district_code": ["120104"] * 6,
            VALUE: [180.0, 17.5, 21.0, 19.0, 20.0, 18.2],
        }
    )
    rule = Rule("STA-001", "statistical", "warning", "同类比较异常", "peer outlier")
    batch = Rule("STA-010", "statistical", "warning", "前两位数字异常", "digits")
    findings = pl.concat(
        [
            findings_from_hits(
                rule,
                pl.DataFrame(
                    {
                        "institution_id": ["A", "B"],
                        "year": [2024, 2024],
                        "field": [VALUE, "water_m3"],  # B's field is not in the data
                        "priority": [0.99, 0.98],
                        "message_zh": ["单位面积能耗偏高", "用水偏高"],
                        "message_en": ["high", "high"],
                    }
                ),
            ),
            findings_from_hits(
                batch,
                pl.DataFrame(
                    {
                        "institution_id": [None],
                        "year": [2024],
                        "field": ["district_code"],
                        "priority": [0.97],
                        "message_zh": ["南开区前两位数字不符合本福特定律"],
                        "message_en": ["digits"],
                    },
                    schema_overrides={"institution_id": pl.String},
                ),
            ),
        ]
    )
    before = data.clone()
    index = write_evidence(findings, data, tmp_path / "evidence", returns=2, min_group_size=3)
    assert index["rule_id"].to_list() == ["STA-001", "STA-001"]  # the 2 returns first in line
    drawn, missing = index.row(0, named=True), index.row(1, named=True)
    assert drawn["file"] == "001_STA-001_A_energy_per_m2_kgce.png" and drawn["note"] is None
    assert (tmp_path / "evidence" / drawn["file"]).read_bytes()[:8] == PNG_MAGIC
    assert missing["file"] is None and "water_m3" in missing["note"]
    assert pl.read_csv(tmp_path / "evidence" / "index.csv").height == 2
    everything = write_evidence(findings, data, tmp_path / "all", returns=3, min_group_size=3)
    row = everything.filter(pl.col("rule_id") == "STA-010").row(0, named=True)
    assert row["file"] is None and "batch of returns (one district_code)" in row["note"]
    assert data.equals(before)


def test_write_evidence_without_a_cjk_font_says_so_for_every_finding(tmp_path, monkeypatch):
    from energy_audit import plotting

    monkeypatch.setattr(plotting, "CJK_FONT_FALLBACK", ["No Such Font SC"])
    data = pl.DataFrame(
        {
            "institution_id": ["A", "B", "C", "D"],
            "year": [2024] * 4,
            "sector": ["school"] * 4,
            "subsector": [None] * 4,
            "district_code": ["120104"] * 4,
            VALUE: [180.0, 17.5, 21.0, 19.0],
        }
    )
    rule = Rule("STA-001", "statistical", "warning", "同类比较异常", "peer outlier")
    hits = pl.DataFrame(
        {
            "institution_id": ["A", "B"],
            "year": [2024, 2024],
            "field": [VALUE, VALUE],
            "priority": [0.99, 0.98],
            "message_zh": ["单位面积能耗偏高", "偏低"],
            "message_en": ["high", "low"],
        }
    )
    index = write_evidence(findings_from_hits(rule, hits), data, tmp_path, min_group_size=3)
    assert index.height == 2 and index["file"].null_count() == 2
    assert all("没有可用于图表的中文字体" in note for note in index["note"])
    assert not list(tmp_path.glob("*.png"))


def test_copy_finding_compares_with_the_year_its_evidence_names():
    # A's return of 2021 differs; the finding says 2023 was copied from 2021
    older = pl.DataFrame(
        [("A", 2021, "P0", *(None if v is None else v * 0.9 for v in A_RETURN))],
        schema=_identical_returns().schema,
        orient="row",
    )
    returns = pl.concat([older, _identical_returns()])
    finding = {**COPIED_FINDING, "evidence": {"method": "copies", "previous_year": 2021}}
    bars = _bars(plot_finding(finding, returns).axes[0])
    assert list(bars) == ["本单位 2023年", "本单位 2021年（上次填报）"]
    assert bars["本单位 2021年（上次填报）"] == [v * 0.9 for v in _drawn(A_RETURN)]
    # the fallback: the latest earlier return, and every identical return of the year (B's)
    old = {k: v for k, v in COPIED_FINDING.items() if k != "evidence"}
    assert list(_bars(plot_finding(old, returns).axes[0])) == [
        "本单位 2023年",
        "本单位 2022年（上年）",
    ]
    old_sibling = {k: v for k, v in SIBLING_FINDING.items() if k != "evidence"}
    assert list(_bars(plot_finding(old_sibling, returns).axes[0]))[-1] == "B（同年）"
    # a year without a return is said, not drawn
    finding = {**COPIED_FINDING, "evidence": {"method": "copies", "previous_year": 2019}}
    ax = plot_finding(finding, returns).axes[0]
    assert list(_bars(ax)) == ["本单位 2023年"]
    assert "本单位 2019年 无填报数据" in _legend(ax)


def test_sibling_finding_draws_exactly_the_siblings_its_evidence_names():
    returns = _identical_returns()
    # D is one m³ of water from B: no search would find it; the evidence names it, and Z,
    # which has no return of 2023
    finding = {
        **SIBLING_FINDING,
        "institution_id": "B",
        "evidence": {**SIBLING_FINDING["evidence"], "related_ids": ["D", "Z", "B"]},
    }
    ax = plot_finding(finding, returns).axes[0]
    drawn = [label for label in _bars(ax) if label.endswith("（同年）")]
    assert drawn == ["D（同年）"]  # not C, whose figures are identical but not named
    assert _bars(ax)["D（同年）"] == _drawn(D_RETURN)
    assert "Z 无2023年填报数据" in _legend(ax)
    # evidence naming no sibling: the return and last year's only
    finding = {**finding, "evidence": {"method": "siblings", "related_ids": []}}
    ax = plot_finding(finding, returns).axes[0]
    assert list(_bars(ax)) == ["本单位 2023年", "本单位 2022年（上年）"]


def _city(n: int = 40, seed: int = 3) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A small clean city (one sector, two subsectors) of 2023 and 2024."""
    rng = np.random.default_rng(seed)
    ids = [f"I{i:03d}" for i in range(n)]
    directory = pl.DataFrame(
        {
            "institution_id": ids,
            "sector": ["school"] * n,
            "subsector": ["primary" if i % 4 else "secondary" for i in range(n)],
            "admin_level": ["district"] * n,
            "district_code": ["120101"] * n,
            "heat_billing": ["by_area"] * n,
            "parent_id": [f"P{i // 4}" for i in range(n)],
        }
    )
    area = np.round(np.exp(rng.normal(9.0, 0.6, n)))
    occupants = np.round(area / 20 * np.exp(rng.normal(0, 0.1, n)))

    def year(y: int) -> pl.DataFrame:
        f = np.exp(rng.normal(0, 0.15, (3, n)))
        return pl.DataFrame(
            {
                "institution_id": ids,
                "year": pl.Series([y] * n, dtype=pl.Int64),
                "building_area_m2": area,
                "occupants": occupants,
                "electricity_kwh": np.round(area * 60 * f[0]) + 1.0,
                "natural_gas_m3": np.round(area * 3 * f[1]) + 1.0,
                "water_m3": np.round(occupants * 8 * f[2]) + 1.0,
            }
        )

    history = year(2023)
    # I005 typed its electricity in 0.1 kWh (×10,000 on last year)
    current = year(2024).with_columns(
        pl.when(pl.col("institution_id") == "I005")
        .then(pl.lit(history["electricity_kwh"][5] * 10_000.0))
        .otherwise(pl.col("electricity_kwh"))
        .alias("electricity_kwh")
    )
    return directory, current, history


def test_findings_of_the_statistical_stage_are_drawn_from_their_evidence(tmp_path):
    directory, current, history = _city()
    findings = check_statistical(current, directory=directory, history=history)
    data = evidence_data(current, directory=directory, history=history)
    of = findings.filter(pl.col("institution_id") == "I005")
    peer = of.filter(pl.col("rule_id") == "STA-001").row(0, named=True)
    evidence = peer["evidence"]
    assert evidence["peer_keys"][0] == "year" and evidence["median"] is not None
    ax = plot_finding(peer, data, min_group_size=1_000).axes[0]
    assert list(_line(ax, "peer_median").get_xdata()) == [evidence["median"]] * 2
    group = data.filter(
        *(
            pl.col(k).cast(pl.String) == v
            for k, v in zip(evidence["peer_keys"], evidence["peer_values"], strict=True)
        )
    )
    assert len(_peer_ticks(ax)) == group.height == evidence["peer_size"]
    history_ax = plot_finding(peer, data).axes[1]
    assert list(_line(history_ax, "previous_value").get_ydata()) == [evidence["previous_value"]]
    slip = of.filter(pl.col("rule_id") == "STA-005").row(0, named=True)
    assert slip["evidence"]["slip_factor"] == 10_000.0
    legend = _legend(plot_finding(slip, data).axes[1])
    assert any("填报值 ÷ 10,000" in text for text in legend)
    index = write_evidence(findings, data, tmp_path, returns=3)
    assert index["file"].null_count() == 0
