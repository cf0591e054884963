"""Evidence charts: what the panel looks at to judge one statistical finding.

A finding (data contract §5) says that a value is implausible; these charts show why. The left
panel puts the institution on the distribution of its peers (the peer group its statistic used,
read from the finding's ``evidence``), with the peer median and the plausible band of the
finding shaded; the right panel shows the institution's own history with the year concerned
highlighted and, where the finding has them, the return it was compared with, the suggested
correction (with the unit factor of a slip) and the expected range. A statistical finding is
drawn from its evidence, never recomputed, so that the chart and the finding agree; a finding
without evidence (a rule finding) is drawn from the data (:func:`plot_finding`).

A finding of copied figures names no field (STA-007: every quantity identical to last year;
STA-008: identical to another unit of the same parent). Its evidence is the return itself: a
grouped bar chart of every quantity and cost of :data:`COPY_COLUMNS` in the frame, the
institution's return of the year beside its return of the year it was copied from and beside
the returns of the siblings its evidence names (:func:`plot_identical_returns`). Bars of
exactly equal height make a copy obvious.

The functions are generic: frames and column names in, a :class:`matplotlib.figure.Figure` out.
They draw in :func:`energy_audit.plotting.chart_style` (Chinese labels with units from
:func:`energy_audit.io.writers.chinese_header`), never call ``plt.show()``, never change their
inputs and never change matplotlib's global settings. Figures are not registered with pyplot:
a notebook shows a returned figure once, and a loop over many findings keeps none alive.

Examples
--------
>>> import polars as pl
>>> from energy_audit.panel.evidence import plot_finding
>>> returns = pl.DataFrame(
...     {
...         "institution_id": ["A", "B", "C", "D", "A"],
...         "year": [2023, 2023, 2023, 2023, 2022],
...         "sector": ["school"] * 5,
...         "subsector": [None] * 5,
...         "energy_per_m2_kgce": [180.0, 17.5, 21.0, 19.0, 18.2],
...     }
... )
>>> finding = {
...     "rule_id": "STA-001",
...     "institution_id": "A",
...     "year": 2023,
...     "field": "energy_per_m2_kgce",
...     "expected_low": 9.0,
...     "expected_high": 40.0,
...     "suggested_value": 18.0,
...     "message_zh": "单位建筑面积能耗 180 千克标准煤/平方米，约为同类中位数的 9 倍。",
...     "evidence": {
...         "method": "peer",
...         "peer_keys": ["year", "sector"],
...         "peer_values": ["2023", "school"],
...         "median": 20.0,
...         "previous_value": 18.2,
...         "previous_year": 2022,
...     },
... }
>>> fig = plot_finding(finding, returns)
>>> [ax.get_title() for ax in fig.axes]
['同类单位分布（中小学及幼儿园，2023年）', '历年数据']
>>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()][:3]
['同类单位（4 家）', '合理范围 9.00–40.0', '同类中位数 20.0']
>>> fig.savefig("finding.png")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogFormatter, MaxNLocator

from energy_audit import contract
from energy_audit.errors import EnergyAuditError, UnusableInputError
from energy_audit.io.writers import chinese_header, write_csv
from energy_audit.plotting import (
    MissingFontError,
    apply_fonts,
    chart_style,
    cjk_font,
    new_figure,
)

DEFAULT_PEER_GROUPS: Final[tuple[str, ...]] = ("sector", "subsector")
"""Columns that define a peer group, coarse to fine (data contract §1)."""

DEFAULT_MIN_GROUP_SIZE: Final[int] = 10
"""Fewest institutions with a value [count] for a peer group to be drawn on its own.

A smaller group is replaced by its parent (sector+subsector → sector → all of the year), as the
peer scores borrow strength from the parent group.
"""

AUTO_LOG_RATIO: Final[float] = 100.0
"""Ratio of the largest to the smallest value [-] from which a history is drawn on a log axis.

Two orders of magnitude: a unit slip of ×1,000 or ×10,000 would flatten the other years on a
linear axis.
"""

MIN_BINS: Final[int] = 5
"""Fewest bins of a peer histogram."""

MAX_BINS: Final[int] = 60
"""Most bins of a peer histogram."""

TITLE_WRAP_CHARS: Final[int] = 60
"""Characters per line of a finding's title (the message wraps, CJK characters count as one)."""

COPY_COLUMNS: Final[tuple[str, ...]] = (
    "electricity_kwh",
    "natural_gas_m3",
    "coal_t",
    "gasoline_l",
    "diesel_l",
    "lpg_kg",
    "heat_gj",
    "other_energy_tce",
    "water_m3",
    "electricity_cost_yuan",
    "natural_gas_cost_yuan",
    "water_cost_yuan",
)
"""Quantity and cost columns of a return, in their canonical units, that copies are judged on.

The columns the copy rules compare (STA-007 with last year, STA-008 with siblings): a finding of
theirs names no field, and :func:`plot_finding` draws those of these columns that the frame has
with :func:`plot_identical_returns`.
"""

MAX_IDENTICAL_SHOWN: Final[int] = 6
"""Most other institutions with identical figures drawn as bars [count]; the rest are counted.

Six, with the institution's two returns eight bars per quantity: more could not be told apart.
"""

MAX_NARROW_GROUPS: Final[int] = 4
"""Most quantities [count] a new grouped bar chart draws one panel wide; more: two panels.

With the legend to its right, a panel leaves room for four groups of two-line tick labels.
"""

MIN_BAR_DECADES: Final[float] = 0.5
"""Least height [decades of the log axis] of the smallest bar of a grouped bar chart.

Bars on a log axis start at its lower limit: half a decade below the smallest value keeps the
shortest bar visible.
"""

_COLORS: Final[Mapping[str, str]] = {
    "peers": "#95a5a6",
    "institution": "#c0392b",
    "median": "#2c3e50",
    "band": "#27ae60",
    "suggested": "#1f5fa8",
    "current": "#f4d03f",
    "history": "#34495e",
    "previous": "#7f8c8d",
}

_IDENTICAL_COLORS: Final[tuple[str, ...]] = (
    "#1f5fa8",
    "#e67e22",
    "#8e44ad",
    "#16a085",
    "#b7950b",
    "#d35490",
)
"""Colours of the other institutions' bars, in the order drawn (:data:`MAX_IDENTICAL_SHOWN`)."""


# --------------------------------------------------------------------------- helpers


def _fmt(x: float) -> str:
    """Format a value for a label: thousands separators, three to four significant digits."""
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:,.1f}"
    if a >= 0.01 or a == 0:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _fmt_tick(x: float, _pos: Any = None) -> str:
    """Format a tick of a log axis as a plain number (``1,000`` rather than 10³)."""
    if x >= 1 and float(x).is_integer():
        return f"{x:,.0f}"
    return f"{x:g}"


class _PlainLogFormatter(LogFormatter):
    """Label the minor ticks matplotlib would label on a log axis, as plain numbers."""

    def __call__(self, x: float, pos: Any = None) -> str:
        return _fmt_tick(x) if super().__call__(x, pos) else ""


def _root_figure(ax: Axes) -> Figure:
    fig = ax.figure
    while isinstance(fig, SubFigure):
        fig = fig.figure
    assert isinstance(fig, Figure)
    return fig


def _names(data: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """Column names of a frame (a LazyFrame's from its schema, without collecting it)."""
    return data.collect_schema().names() if isinstance(data, pl.LazyFrame) else data.columns


def _frame(data: pl.DataFrame | pl.LazyFrame, columns: Sequence[str], what: str) -> pl.DataFrame:
    """Select ``columns`` from a frame (collecting a LazyFrame); name what is missing."""
    names = _names(data)
    missing = [c for c in columns if c not in names]
    if missing:
        raise UnusableInputError(
            f"{what} has no column {', '.join(map(repr, missing))} (columns: {', '.join(names)})"
        )
    selected = data.select(list(dict.fromkeys(columns)))
    return selected.collect() if isinstance(selected, pl.LazyFrame) else selected


def _check_year(frame: pl.DataFrame, year: str, what: str) -> None:
    dtype = frame.schema[year]
    if not dtype.is_integer():
        raise UnusableInputError(f"{what}: column {year!r} is {dtype}, not a year")


def _values(frame: pl.DataFrame, column: str, what: str) -> pl.Series:
    dtype = frame.schema[column]
    if not (dtype.is_numeric() or dtype == pl.Null):
        raise UnusableInputError(f"{what}: column {column!r} is {dtype}, not numeric")
    return frame.get_column(column).cast(pl.Float64)


def _finite(values: pl.Series) -> npt.NDArray[np.float64]:
    """Finite values of a numeric series (nulls, NaN and infinities dropped)."""
    arr = values.cast(pl.Float64).to_numpy().astype(np.float64, copy=False)
    return arr[np.isfinite(arr)]


def _bin_edges(values: npt.NDArray[np.float64], log: bool) -> npt.NDArray[np.float64]:
    """Histogram bin edges of equal width on the axis scale.

    The width follows the Freedman–Diaconis rule, 2·IQR·n^(-1/3) (Freedman & Diaconis 1981),
    which the bulk of the peers sets and an outlier does not; at most :data:`MAX_BINS` bins.
    """
    x = np.log10(values) if log else values
    lo, hi = float(x.min()), float(x.max())
    if hi - lo <= 0:
        pad = 0.05 if log else max(abs(lo) * 0.1, 0.5)
        lo, hi = lo - pad, hi + pad
    q75, q25 = np.percentile(x, [75, 25])
    width = 2 * (q75 - q25) * x.size ** (-1 / 3)
    n_bins = MIN_BINS if width <= 0 else math.ceil((hi - lo) / width)
    edges = np.linspace(lo, hi, int(np.clip(n_bins, MIN_BINS, MAX_BINS)) + 1)
    if not log:
        return edges
    edges = 10**edges
    # 10**log10(x) may round below x: keep the extreme values inside the outer bins.
    edges[0] = min(edges[0], float(values.min()))
    edges[-1] = max(edges[-1], float(values.max()))
    return edges


def _limits(points: npt.NDArray[np.float64], log: bool) -> tuple[float, float]:
    """Axis limits that show every point with a margin (multiplicative on a log axis)."""
    pts = points[points > 0] if log else points
    lo, hi = float(pts.min()), float(pts.max())
    if log:
        span = math.log10(hi / lo)
        pad = 0.06 * span if span > 0 else 0.1
        return lo / 10**pad, hi * 10**pad
    span = hi - lo
    pad = 0.06 * span if span > 0 else max(abs(lo) * 0.1, 1.0)
    return lo - pad, hi + pad


def _axis_fraction(x: float, limits: tuple[float, float], log: bool) -> float:
    lo, hi = limits
    if log:
        return math.log10(x / lo) / math.log10(hi / lo)
    return (x - lo) / (hi - lo)


def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _band(low: Any, high: Any) -> tuple[float | None, float | None] | None:
    lo, hi = _as_float(low), _as_float(high)
    return None if lo is None and hi is None else (lo, hi)


def _draw_band(
    ax: Axes,
    band: tuple[float | None, float | None],
    limits: tuple[float, float],
    *,
    vertical: bool,
    label: str,
) -> None:
    """Shade a range; an open end (None) runs to the edge of the axis."""
    lo = band[0] if band[0] is not None else limits[0]
    hi = band[1] if band[1] is not None else limits[1]
    text = f"{label} {'…' if band[0] is None else _fmt(band[0])}–" + (
        "…" if band[1] is None else _fmt(band[1])
    )
    span = ax.axvspan if vertical else ax.axhspan
    span(lo, hi, color=_COLORS["band"], alpha=0.15, lw=0, label=text, gid="band", zorder=0)


def _axis_label(column: str, *, log: bool, two_lines: bool) -> str:
    """Chinese header of a column with its unit; a vertical label puts the unit on line two."""
    header = chinese_header(column)
    suffix = "，对数坐标" if log else ""
    name, bracket, unit = header.partition("(")
    if two_lines and bracket and name:
        return f"{name}\n({unit}{suffix}"
    return header + suffix


def _wrap_zh(text: str, width: int) -> str:
    """Wrap a Chinese sentence into lines of at most ``width`` characters, after punctuation.

    Lines break after ``，。；：、`` where possible (a number such as ``1,000`` stays whole); a
    clause longer than ``width`` is cut with :func:`textwrap.wrap`.
    """
    clauses = re.findall(r"[^，。；：、]*[，。；：、]?", text.strip())
    lines: list[str] = []
    line = ""
    for clause in filter(None, clauses):
        if len(line) + len(clause) <= width:
            line += clause
            continue
        if line:
            lines.append(line)
        parts = textwrap.wrap(clause, width) if len(clause) > width else [clause]
        lines += parts[:-1]
        line = parts[-1]
    if line:
        lines.append(line)
    return "\n".join(lines)


@functools.cache
def _enum_labels(column: str) -> dict[str, str]:
    """Chinese label of each code of an enumerated contract column (empty if none)."""
    for name in contract.TABLE_NAMES:
        for col in contract.table(name).columns:
            if col.name == column and col.values:
                return {v.code: v.labels[0] for v in col.values if v.labels}
    return {}


def _label_zh(column: str, code: Any) -> str:
    return _enum_labels(column).get(str(code), str(code))


# --------------------------------------------------------------------------- charts


def plot_peer_distribution(
    peers: pl.DataFrame | pl.LazyFrame,
    value: str,
    institution_id: str,
    *,
    ax: Axes | None = None,
    log: bool = True,
    title: str | None = None,
    band: tuple[float | None, float | None] | None = None,
    suggested: float | None = None,
    suggested_label: str | None = None,
    median: float | None = None,
    median_label: str = "同类中位数",
    id_column: str = "institution_id",
) -> Figure:
    """Draw an institution on the distribution of a value across its peer group.

    A histogram of the peers' values (bins of equal width on the axis scale) with every peer
    as a tick along the bottom, the peer median (dashed), the plausible ``band`` (shaded) and
    the institution (red line annotated with its value).

    Parameters
    ----------
    peers : polars.DataFrame or polars.LazyFrame
        One row per institution of the peer group, the institution included.
    value : str
        Column drawn, in its canonical unit (e.g. ``energy_per_m2_kgce`` [kgce/m²]); the axis
        label is its Chinese header with the unit (:func:`~energy_audit.io.writers.chinese_header`).
    institution_id : str
        The institution marked; it must have a value in ``peers``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (default: a new figure).
    log : bool, default True
        Logarithmic value axis (consumption is log-normal across institutions). Values ≤ 0
        cannot be shown on it: they are counted in the legend; if the institution's own value
        is ≤ 0, the axis is linear.
    title : str, optional
        Axes title (default ``同类单位分布``).
    band : tuple of (float or None, float or None), optional
        Plausible range [unit of ``value``], e.g. the finding's ``expected_low`` and
        ``expected_high`` (median·exp(±k·scale) of a robust peer score); None: not drawn. An
        open end (None) runs to the edge of the axis.
    suggested : float, optional
        A proposed correction [unit of ``value``], drawn as a dotted blue line.
    suggested_label : str, optional
        Legend text of the correction (default ``建议值 <suggested>``).
    median : float, optional
        The centre the value was compared with [unit of ``value``], drawn dashed: a finding's
        ``evidence.median`` (the peer median of the statistic, or the model's expectation);
        default: the median of ``peers``.
    median_label : str, default ``"同类中位数"``
        Legend text of the centre (followed by its value).
    id_column : str, default ``"institution_id"``
        Column identifying institutions.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (the one of ``ax`` when given).

    Raises
    ------
    UnusableInputError
        If a column is missing or not numeric, or the institution has no value in ``peers``.
    EnergyAuditError
        If no font with Chinese characters is installed.

    Notes
    -----
    Without ``median``, the median drawn is that of all peers with a finite value, the
    institution included, as in the robust peer scores (median and MAD on the log scale, see
    Iglewicz & Hoaglin 1993).

    References
    ----------
    B. Iglewicz and D. C. Hoaglin, *How to Detect and Handle Outliers*, ASQC Quality Press, 1993.

    D. Freedman and P. Diaconis, "On the histogram as a density estimator: L2 theory",
    *Zeitschrift für Wahrscheinlichkeitstheorie und verwandte Gebiete* 57, 453–476, 1981.
    """
    frame = _frame(peers, [id_column, value], "peer group")
    all_values = _finite(_values(frame, value, "peer group"))
    own = _finite(_values(frame.filter(pl.col(id_column) == institution_id), value, "peer group"))
    if own.size == 0:
        raise UnusableInputError(
            f"institution {institution_id!r} has no value of {value!r} in the peer group "
            f"({frame.height} rows)"
        )
    use_log = log and bool((own > 0).all())
    shown = all_values[all_values > 0] if use_log else all_values
    hidden = all_values.size - shown.size
    if median is None:
        median = float(np.median(all_values))

    with chart_style():
        if ax is None:
            ax = new_figure().subplots()
        fig = _root_figure(ax)

        extra = [
            *own,
            *(b for b in (band or ()) if b is not None),
            *([suggested] if suggested is not None else []),
            median,
        ]
        limits = _limits(np.concatenate([shown, np.asarray(extra, dtype=np.float64)]), use_log)
        if use_log:
            ax.set_xscale("log")
        ax.set_xlim(*limits)

        bins = _bin_edges(shown, use_log)
        ax.hist(
            shown,
            bins=bins,
            color=_COLORS["peers"],
            alpha=0.7,
            label=f"同类单位（{all_values.size} 家）",
            gid="peers",
        )
        ax.plot(
            shown,
            np.full(shown.size, 0.02),
            linestyle="none",
            marker="|",
            markersize=10,
            color=_COLORS["history"],
            alpha=0.6,
            transform=ax.get_xaxis_transform(),
            gid="peer_values",
        )
        if band is not None:
            _draw_band(ax, band, limits, vertical=True, label="合理范围")
        ax.axvline(
            median,
            color=_COLORS["median"],
            linestyle="--",
            lw=1.2,
            label=f"{median_label} {_fmt(median)}",
            gid="peer_median",
        )
        if suggested is not None:
            ax.axvline(
                suggested,
                color=_COLORS["suggested"],
                linestyle=":",
                lw=1.8,
                label=suggested_label or f"建议值 {_fmt(suggested)}",
                gid="suggested",
            )
        for i, v in enumerate(own):
            ax.axvline(
                v,
                color=_COLORS["institution"],
                lw=2.2,
                label="本单位" if i == 0 else None,
                gid="institution",
            )
            right = _axis_fraction(float(v), limits, use_log) > 0.7
            ax.annotate(
                f"本单位\n{_fmt(float(v))}",
                xy=(v, 0.97 - 0.12 * i),
                xycoords=ax.get_xaxis_transform(),
                xytext=(-5 if right else 5, 0),
                textcoords="offset points",
                ha="right" if right else "left",
                va="top",
                color=_COLORS["institution"],
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "lw": 0},
            )
        if use_log:
            ax.xaxis.set_major_formatter(FuncFormatter(_fmt_tick))
            ax.xaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        handles, labels = ax.get_legend_handles_labels()
        if hidden:
            handles.append(Line2D([], [], linestyle="none"))
            labels.append(f"另有 {hidden} 家数值≤0，未在对数坐标上显示")
        ax.legend(handles, labels, loc="best")
        ax.set_xlabel(_axis_label(value, log=use_log, two_lines=False))
        ax.set_ylabel("单位数（家）")
        ax.set_title(title if title is not None else "同类单位分布")
        apply_fonts(ax)
    return fig


def _mark(
    ax: Axes,
    x: Any,
    y: Any,
    *,
    label: str,
    gid: str,
    color: str,
    marker: str = "o",
    size: float = 10,
    face: str | None = None,
) -> None:
    """Mark points of a history panel (this year, the suggestion, last year, the expectation).

    ``face``: the fill of a hollow marker (``"white"``, ``"none"``), drawn with a thick edge;
    None: a filled marker.
    """
    ax.plot(
        x,
        y,
        linestyle="none",
        marker=marker,
        markersize=size,
        color=color,
        label=label,
        gid=gid,
        zorder=3,
        **({} if face is None else {"markerfacecolor": face, "markeredgewidth": 2}),
    )


def plot_history(
    history: pl.DataFrame | pl.LazyFrame,
    value: str,
    institution_id: str,
    *,
    year: str = "year",
    ax: Axes | None = None,
    suggested: float | None = None,
    suggested_label: str | None = None,
    expected: tuple[float | None, float | None] | None = None,
    expected_value: float | None = None,
    expected_label: str = "按上年变化推算",
    previous: tuple[int, float] | None = None,
    current_year: int | None = None,
    log: bool | None = None,
    title: str | None = None,
    id_column: str = "institution_id",
) -> Figure:
    """Draw an institution's value over the years, the year concerned highlighted.

    Parameters
    ----------
    history : polars.DataFrame or polars.LazyFrame
        Returns of several years; rows of other institutions are ignored.
    value : str
        Column drawn, in its canonical unit; the axis label is its Chinese header with the unit.
    institution_id : str
        The institution drawn; it must have at least one row in ``history``.
    year : str, default ``"year"``
        Column of the reporting year.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (default: a new figure).
    suggested : float, optional
        A proposed correction of the current year's value [unit of ``value``], drawn as a blue
        diamond with an arrow from the value reported.
    suggested_label : str, optional
        Legend text of the correction (default ``建议值 <suggested>``).
    expected : tuple of (float or None, float or None), optional
        The range the current value was expected in [unit of ``value``], shaded across the
        chart; an open end (None) runs to the edge of the axis.
    expected_value : float, optional
        The value the current one was compared with [unit of ``value``], e.g. a change
        finding's ``evidence.median`` (last year's value times the year's median change),
        drawn as a dark cross in the current year.
    expected_label : str, default ``"按上年变化推算"``
        Legend text of ``expected_value`` (followed by its value).
    previous : tuple of (int, float), optional
        The year and value of the return the finding compared with (a finding's
        ``evidence.previous_year`` and ``evidence.previous_value``), ringed in grey.
    current_year : int, optional
        The year concerned (default: the latest year of the institution).
    log : bool, optional
        Logarithmic value axis; default: when every value is positive and the largest is at
        least :data:`AUTO_LOG_RATIO` times the smallest (a unit slip in the history).
    title : str, optional
        Axes title (default ``历年数据``).
    id_column : str, default ``"institution_id"``
        Column identifying institutions.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (the one of ``ax`` when given).

    Raises
    ------
    UnusableInputError
        If a column is missing or not numeric, or the institution has no row in ``history``.
    EnergyAuditError
        If no font with Chinese characters is installed.

    Notes
    -----
    A year without a value (null) leaves a gap in the line, so a missing return shows.
    """
    frame = _frame(history, [id_column, year, value], "history").filter(
        pl.col(id_column) == institution_id
    )
    if frame.is_empty():
        raise UnusableInputError(f"history has no row of institution {institution_id!r}")
    _check_year(frame, year, "history")
    frame = frame.with_columns(_values(frame, value, "history").alias(value)).sort(year)
    years = frame.get_column(year).to_numpy().astype(np.float64)
    values = frame.get_column(value).fill_null(float("nan")).to_numpy().astype(np.float64)
    if current_year is None:
        current_year = int(np.nanmax(years))
    current = values[years == current_year]
    current = current[np.isfinite(current)]

    extra = [
        *(v for v in (suggested, expected_value) if v is not None),
        *(e for e in (expected or ()) if e is not None),
        *([previous[1]] if previous is not None else []),
    ]
    points = np.concatenate([values[np.isfinite(values)], np.asarray(extra, dtype=np.float64)])
    if log is None:
        log = bool(
            points.size > 0 and (points > 0).all() and points.max() >= AUTO_LOG_RATIO * points.min()
        )
    log = log and bool((points > 0).any())  # nothing to show on a log axis: linear

    with chart_style():
        if ax is None:
            ax = new_figure().subplots()
        fig = _root_figure(ax)
        if log:
            ax.set_yscale("log")
        if points.size:
            limits = _limits(points, log)
            ax.set_ylim(*limits)
        else:
            limits = ax.get_ylim()
        shown_years = [current_year, *([previous[0]] if previous is not None else [])]
        x_lo = min(float(np.nanmin(years)), *shown_years) - 0.6
        x_hi = max(float(np.nanmax(years)), *shown_years) + 0.6
        ax.set_xlim(x_lo, x_hi)

        ax.axvspan(
            current_year - 0.4,
            current_year + 0.4,
            color=_COLORS["current"],
            alpha=0.35,
            lw=0,
            label=f"本年度 {current_year}",
            gid="current_year",
            zorder=0,
        )
        if expected is not None:
            _draw_band(ax, expected, limits, vertical=False, label="预期范围")
        ax.plot(
            years,
            values,
            color=_COLORS["history"],
            marker="o",
            markersize=5,
            lw=1.5,
            label="填报值",
            gid="history",
        )
        if current.size:
            _mark(
                ax,
                np.full(current.size, current_year, dtype=np.float64),
                current,
                label=f"本年度填报 {_fmt(float(current[0]))}",
                gid="current_value",
                color=_COLORS["institution"],
            )
        if suggested is not None:
            _mark(
                ax,
                [current_year],
                [suggested],
                label=suggested_label or f"建议值 {_fmt(suggested)}",
                gid="suggested",
                color=_COLORS["suggested"],
                marker="D",
                size=9,
                face="white",
            )
            if current.size:
                ax.annotate(
                    "",
                    xy=(current_year, suggested),
                    xytext=(current_year, float(current[0])),
                    arrowprops={"arrowstyle": "->", "color": _COLORS["suggested"], "lw": 1.5},
                )
        if previous is not None:
            which = "上年" if previous[0] == current_year - 1 else "上次填报"
            _mark(
                ax,
                [previous[0]],
                [previous[1]],
                label=f"{which}（{previous[0]}年）{_fmt(previous[1])}",
                gid="previous_value",
                color=_COLORS["previous"],
                size=13,
                face="none",
            )
        if expected_value is not None:
            _mark(
                ax,
                [current_year],
                [expected_value],
                label=f"{expected_label} {_fmt(expected_value)}",
                gid="expected_value",
                color=_COLORS["median"],
                marker="X",
                size=9,
            )
        if log:
            ax.yaxis.set_major_formatter(FuncFormatter(_fmt_tick))
            ax.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="best")
        ax.set_xlabel(chinese_header(year))
        ax.set_ylabel(_axis_label(value, log=log, two_lines=True))
        ax.set_title(title if title is not None else "历年数据")
        apply_fonts(ax)
    return fig


def _returns_frame(
    data: pl.DataFrame | pl.LazyFrame, columns: Sequence[str], year: str, id_column: str, what: str
) -> pl.DataFrame:
    """Key and ``columns`` of a frame of returns, the quantities as Float64."""
    frame = _frame(data, [id_column, year, *columns], what)
    _check_year(frame, year, what)
    return frame.with_columns([_values(frame, c, what).alias(c) for c in columns])


def _row_values(row: Mapping[str, Any], columns: Sequence[str]) -> list[float | None]:
    return [_as_float(row[c]) for c in columns]


def _tick_label(column: str) -> str:
    """Chinese header of a column on two lines, the unit on the second."""
    name, bracket, unit = chinese_header(column).partition("(")
    return f"{name}\n({unit}" if bracket and name else name


def _bar_limits(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Limits of a log value axis of bars: the shortest bar stays visible, room above the tallest.

    The lower limit is at least :data:`MIN_BAR_DECADES` below the smallest value; above the
    largest a fifth of the axis is left for the value labels.
    """
    lo, hi = float(values.min()), float(values.max())
    span = math.log10(hi / lo)
    below = max(MIN_BAR_DECADES, 0.1 * span)
    above = max(0.25 * (span + below), 0.3)
    return lo / 10**below, hi * 10**above


def _identical_in_year(
    of_year: pl.DataFrame,
    own: Sequence[float | None],
    columns: Sequence[str],
    institution_id: str,
    id_column: str,
) -> pl.DataFrame:
    """Other returns of the year equal to ``own`` wherever it has a value (not all zeros)."""
    compared = {c: v for c, v in zip(columns, own, strict=True) if v is not None}
    if not any(v != 0 for v in compared.values()):
        return of_year.clear()
    return (
        of_year.filter(
            pl.col(id_column) != institution_id,
            *(pl.col(c) == v for c, v in compared.items()),
        )
        .sort(id_column, maintain_order=True)
        .unique(id_column, keep="first", maintain_order=True)
    )


def plot_identical_returns(
    returns: pl.DataFrame | pl.LazyFrame,
    institution_id: str,
    current_year: int,
    columns: Sequence[str],
    *,
    history: pl.DataFrame | pl.LazyFrame | None = None,
    previous_year: int | None = None,
    identical_ids: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    year: str = "year",
    id_column: str = "institution_id",
) -> Figure:
    """Draw an institution's return beside its last return and the identical returns of others.

    A grouped bar chart on a log value axis, one group per quantity of ``columns``, one bar per
    return compared:

    - the institution's return of ``current_year`` (red, ``本单位 2023年``), its value written
      above the group;
    - its return of ``previous_year`` (a copy finding's ``evidence.previous_year``), default
      its latest earlier return (grey, ``本单位 2022年（上年）``; ``（上次填报）`` when a year
      lies between), if it has one;
    - the return of ``current_year`` of each institution of ``identical_ids`` (a sibling
      finding's ``evidence.related_ids``), default of every other institution whose figures
      are identical (``<id>（同年）``), at most :data:`MAX_IDENTICAL_SHOWN` of them in the order
      of their id; the legend counts the rest (``及另 N 家同年数值相同``).

    Copied figures show as bars of exactly equal height. A value ≤ 0 cannot be a bar on the log
    axis: its slot shows ``0`` (or the negative value) at the bottom of the axes, a null
    ``—``. Quantities no return compared has a non-zero value of are left out and counted in
    the legend.

    Parameters
    ----------
    returns : polars.DataFrame or polars.LazyFrame
        Returns with ``id_column``, ``year`` and ``columns``: the institution's return of
        ``current_year`` and those of the other institutions of that year.
    institution_id : str
        The institution drawn; it must have a return of ``current_year`` in ``returns`` (of
        several rows, the first is drawn).
    current_year : int
        The year concerned.
    columns : sequence of str
        Numeric quantity and cost columns compared, in their canonical units (e.g.
        :data:`COPY_COLUMNS`); the tick labels are their Chinese headers with the unit.
    history : polars.DataFrame or polars.LazyFrame, optional
        Earlier returns with the same columns (default: ``returns``); the institution's latest
        return before ``current_year`` is drawn.
    previous_year : int, optional
        The earlier year whose return is drawn (default: the latest before ``current_year``);
        without a return of that year, the legend says so.
    identical_ids : sequence of str, optional
        The other institutions drawn (default: those with identical figures, see Notes); ids
        without a return of ``current_year`` in ``returns`` are named in the legend.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (default: a new figure, two panels wide for more than
        :data:`MAX_NARROW_GROUPS` quantities). The legend is drawn to the right of the axes;
        the tick labels need about 0.6 inch per quantity.
    title : str, optional
        Axes title (default ``填报值对比（2023年）``).
    year : str, default ``"year"``
        Column of the reporting year.
    id_column : str, default ``"institution_id"``
        Column identifying institutions.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (the one of ``ax`` when given).

    Raises
    ------
    UnusableInputError
        If a column is missing or not numeric, ``year`` is not an integer, the institution has
        no return of ``current_year``, or no return compared has a value > 0 to draw.
    EnergyAuditError
        If ``columns`` is empty, or no font with Chinese characters is installed.

    Notes
    -----
    Without ``identical_ids``, another institution's return is identical when it equals the
    institution's in every column where the institution's value is not null (a null of the
    other return there does not match)
    and at least one of those values is non-zero: returns of zeros only are not copies. The
    comparison is exact, as in :func:`energy_audit.outliers.copies.identical_within_groups`;
    unlike that detector it looks at every institution of the year, not only the siblings of
    one parent.

    Examples
    --------
    >>> import polars as pl
    >>> from energy_audit.panel.evidence import plot_identical_returns
    >>> returns = pl.DataFrame(
    ...     {
    ...         "institution_id": ["A", "A", "B", "C"],
    ...         "year": [2022, 2023, 2023, 2023],
    ...         "electricity_kwh": [81_234.0, 81_234.0, 81_234.0, 95_871.0],
    ...         "water_m3": [2_345.0, 2_345.0, 2_345.0, 2_345.0],
    ...     }
    ... )
    >>> fig = plot_identical_returns(returns, "A", 2023, ["electricity_kwh", "water_m3"])
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['本单位 2023年', '本单位 2022年（上年）', 'B（同年）']
    """
    columns = list(dict.fromkeys(columns))
    if not columns:
        raise EnergyAuditError("plot_identical_returns: no column to compare")
    frame = _returns_frame(returns, columns, year, id_column, "returns")
    of_year = frame.filter(pl.col(year) == current_year)
    own_rows = of_year.filter(pl.col(id_column) == institution_id)
    if own_rows.is_empty():
        raise UnusableInputError(
            f"returns has no row of institution {institution_id!r} in {current_year}"
        )
    own = _row_values(own_rows.row(0, named=True), columns)
    series: list[tuple[str, list[float | None], str, str]] = [
        (f"本单位 {current_year}年", own, _COLORS["institution"], "own")
    ]

    past = (
        frame if history is None else _returns_frame(history, columns, year, id_column, "history")
    )
    earlier = past.filter(pl.col(id_column) == institution_id, pl.col(year) < current_year)
    if previous_year is not None:
        earlier = earlier.filter(pl.col(year) == previous_year)
    notes: list[str] = []
    if not earlier.is_empty():
        last = earlier.sort(year, descending=True, maintain_order=True).row(0, named=True)
        which = "上年" if last[year] == current_year - 1 else "上次填报"
        series.append(
            (
                f"本单位 {last[year]}年（{which}）",
                _row_values(last, columns),
                _COLORS["previous"],
                "previous",
            )
        )
    elif previous_year is not None:
        notes.append(f"本单位 {previous_year}年 无填报数据")

    if identical_ids is not None:
        wanted = [i for i in dict.fromkeys(identical_ids) if i != institution_id]
        identical = (
            of_year.filter(pl.col(id_column).is_in(wanted))
            .sort(id_column, maintain_order=True)
            .unique(id_column, keep="first", maintain_order=True)
        )
        absent = sorted(set(wanted) - set(identical.get_column(id_column)))
        if absent:
            notes.append(f"{'、'.join(absent)} 无{current_year}年填报数据")
    else:
        identical = _identical_in_year(of_year, own, columns, institution_id, id_column)
    for k, other in enumerate(identical.head(MAX_IDENTICAL_SHOWN).iter_rows(named=True)):
        series.append(
            (
                f"{other[id_column]}（同年）",
                _row_values(other, columns),
                _IDENTICAL_COLORS[k % len(_IDENTICAL_COLORS)],
                "identical",
            )
        )
    not_shown = identical.height - min(identical.height, MAX_IDENTICAL_SHOWN)

    drawn = [
        j
        for j in range(len(columns))
        if any(values[j] not in (None, 0.0) for _, values, *_ in series)
    ]
    positive = np.asarray(
        [v for _, values, *_ in series for j in drawn if (v := values[j]) is not None and v > 0],
        dtype=np.float64,
    )
    if positive.size == 0:
        raise UnusableInputError(
            f"no return compared with institution {institution_id!r} in {current_year} has a "
            f"value > 0 of {', '.join(map(repr, columns))}: nothing to draw on a log axis"
        )

    with chart_style():
        if ax is None:
            ax = new_figure(1 if len(drawn) <= MAX_NARROW_GROUPS else 2).subplots()
        fig = _root_figure(ax)
        ax.set_yscale("log")
        ax.set_ylim(*_bar_limits(positive))
        ax.set_xlim(-0.5, len(drawn) - 0.5)
        width = 0.8 / len(series)
        handles: list[Any] = []
        labels: list[str] = []
        for k, (label, values, color, gid) in enumerate(series):
            offset = (k - (len(series) - 1) / 2) * width
            xs: list[float] = []
            heights: list[float] = []
            for i, j in enumerate(drawn):
                v = values[j]
                if v is not None and v > 0:
                    xs.append(i + offset)
                    heights.append(v)
                    continue
                ax.text(
                    i + offset,
                    0.02,
                    "—" if v is None else "0" if v == 0 else _fmt(v),
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    va="bottom",
                    fontsize="x-small",
                    color=color,
                    gid="no_bar",
                )
            ax.bar(xs, heights, width=width, color=color, label=label, gid=gid, zorder=2)
            handles.append(Patch(facecolor=color))
            labels.append(label)
        for i, j in enumerate(drawn):
            v = own[j]
            if v is None or v <= 0:
                continue
            top = max(w for _, values, *_ in series if (w := values[j]) is not None)
            ax.annotate(
                _fmt(v),
                xy=(i, top),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                rotation=90,
                fontsize="x-small",
                color=_COLORS["institution"],
                gid="value_label",
            )
        for note in (
            *notes,
            f"及另 {not_shown} 家同年数值相同" if not_shown else "",
            f"另有 {len(columns) - len(drawn)} 项均为 0 或未填报，未画出"
            if len(drawn) < len(columns)
            else "",
        ):
            if note:
                handles.append(Line2D([], [], linestyle="none"))
                labels.append(note)
        ax.set_xticks(np.arange(len(drawn)), [_tick_label(columns[j]) for j in drawn])
        ax.xaxis.grid(False)
        ax.yaxis.set_major_formatter(FuncFormatter(_fmt_tick))
        ax.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_ylabel("填报值\n(单位见横轴，对数坐标)")
        ax.set_title(title if title is not None else f"填报值对比（{current_year}年）")
        apply_fonts(ax)
    return fig


def _finding_row(finding: Mapping[str, Any] | pl.DataFrame) -> dict[str, Any]:
    if isinstance(finding, pl.DataFrame):
        if finding.height != 1:
            raise EnergyAuditError(
                f"plot_finding draws one finding: got a frame of {finding.height} rows "
                "(pass findings.row(i, named=True) or a one-row slice)"
            )
        return finding.row(0, named=True)
    return dict(finding)


def _evidence(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the statistical evidence of a finding row (None: a rule or an older finding).

    A rule finding has a null ``evidence`` (or the method ``rule`` of
    :func:`energy_audit.verify.queue`); findings written before the ``evidence`` column have
    none.
    """
    evidence = row.get("evidence")
    if not isinstance(evidence, Mapping) or evidence.get("method") in (None, "rule"):
        return None
    return dict(evidence)


def _fallback_peer_group(
    current: pl.DataFrame,
    own: Mapping[str, Any],
    value: str,
    peer_groups: Sequence[str],
    min_group_size: int,
) -> tuple[pl.DataFrame, str]:
    """Finest peer group with at least ``min_group_size`` values, and its Chinese description.

    For a finding whose evidence names no peer group (:func:`plot_finding`).
    """
    for level in range(len(peer_groups), 0, -1):
        keys = peer_groups[:level]
        if any(own[k] is None for k in keys):
            continue
        group = current.filter(*(pl.col(k) == own[k] for k in keys))
        if group.get_column(value).drop_nulls().len() >= min_group_size:
            return group, " / ".join(_label_zh(k, own[k]) for k in keys)
    return current, "全部单位"


def _evidence_peer_group(
    frame: pl.DataFrame, keys: Sequence[str], values: Sequence[str | None], year: str
) -> tuple[pl.DataFrame, str]:
    """Rows of the peer group a finding's evidence names, and its Chinese description.

    A row is in the group when each key column, as text, equals the evidence's value (a null
    value: the column is null), as :mod:`energy_audit.verify.statistical` wrote them.
    """
    if len(keys) != len(values):
        raise EnergyAuditError(
            f"evidence names {len(keys)} peer keys ({', '.join(keys)}) but {len(values)} values"
        )
    group = frame.filter(
        *(
            pl.col(k).is_null() if v is None else pl.col(k).cast(pl.String) == v
            for k, v in zip(keys, values, strict=True)
        )
    )
    described = [
        _label_zh(k, v) for k, v in zip(keys, values, strict=True) if k != year and v is not None
    ]
    return group, " / ".join(described) or "全部单位"


def _factor_text(factor: float) -> str:
    """Write a unit factor as a label does: ``100``, ``10,000``, ``0.73``."""
    return f"{factor:,.0f}" if float(factor).is_integer() else f"{factor:.4g}"


def plot_finding(
    finding: Mapping[str, Any] | pl.DataFrame,
    returns_with_peers: pl.DataFrame | pl.LazyFrame,
    *,
    history: pl.DataFrame | pl.LazyFrame | None = None,
    peer_groups: Sequence[str] = DEFAULT_PEER_GROUPS,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    year: str = "year",
    id_column: str = "institution_id",
    log: bool = True,
) -> Figure:
    """Draw the evidence of one finding: the institution among its peers, and its history.

    A statistical finding is drawn from its ``evidence`` (data contract §5), the numbers the
    statistic used, so the chart cannot disagree with the finding:

    - the peer panel draws the group of ``peer_keys`` / ``peer_values`` (the rows of
      ``returns_with_peers`` whose key columns, as text, equal the values: a coarser group
      when the finer one was too small) and marks ``median`` (the peer median; of a model
      finding, STA-004, the model's expectation);
    - the history panel rings ``previous_value`` of ``previous_year``; a change finding
      (STA-006, STA-011) marks its ``median`` there (last year's value times the year's
      median change);
    - a unit-slip finding (STA-005, STA-013) writes its ``slip_factor`` beside the suggested
      value;
    - a finding without a field is drawn as its return (:func:`plot_identical_returns`, the
      :data:`COPY_COLUMNS` the frame has): a copy (STA-007) beside the return of
      ``previous_year``, a sibling finding (STA-008) beside the returns of the institutions of
      ``related_ids``.

    The band is the finding's ``expected_low`` / ``expected_high`` in both panels.

    A finding without evidence (a rule finding, or one written before findings carried
    evidence) is drawn as before: the peer group is the finest of ``peer_groups`` with at least
    ``min_group_size`` values (coarser otherwise, down to all institutions of the year), the
    median is that of the group drawn, the previous return is the line of the history, and a
    finding without a field is compared with the institution's latest earlier return and with
    every return of the year with identical figures. The same peer group is drawn, as context,
    for a statistical finding whose evidence names none (model, change, slip, round-number
    findings); its median is then that of the group drawn.

    Parameters
    ----------
    finding : Mapping or one-row polars.DataFrame
        A row of the findings table (data contract §5). Read: ``institution_id``, ``year``,
        ``field`` (the column drawn; none: the return is compared), ``expected_low`` and
        ``expected_high`` (the band), ``suggested_value``, ``evidence`` (see above),
        ``rule_id`` and ``message_zh`` (the title).
    returns_with_peers : polars.DataFrame or polars.LazyFrame
        Returns (or indicators) of the finding's year with the ``field`` column and the peer
        group's columns (the evidence's ``peer_keys``, else ``peer_groups``; e.g.
        :func:`energy_audit.verify.statistical.evidence_data`); rows of other years are
        ignored for the peer panel. For a finding without a field: returns of the year with
        some of the :data:`COPY_COLUMNS`, compared across institutions.
    history : polars.DataFrame or polars.LazyFrame, optional
        The institution's returns of several years with the ``field`` column (default:
        ``returns_with_peers``, which may hold several years); for a finding without a field,
        with the same :data:`COPY_COLUMNS` as ``returns_with_peers``.
    peer_groups : sequence of str, default ``("sector", "subsector")``
        Columns defining the peer group, coarse to fine, of a finding whose evidence names
        none; empty: all institutions of the year.
    min_group_size : int, default :data:`DEFAULT_MIN_GROUP_SIZE`
        Fewest peers with a value of such a finding's group; a smaller group is replaced by its
        parent (the last column dropped), down to all institutions of the year.
    year : str, default ``"year"``
        Column of the reporting year.
    id_column : str, default ``"institution_id"``
        Column identifying institutions.
    log : bool, default True
        Logarithmic value axis of the peer panel (see :func:`plot_peer_distribution`).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels side by side — :func:`plot_peer_distribution` and :func:`plot_history` —
        under the finding's Chinese message as title (with the rule id). A finding without a
        field: one panel, :func:`plot_identical_returns`, under the same title.

    Raises
    ------
    EnergyAuditError
        If the finding names no institution, or neither a field nor a year (nothing to draw),
        a frame has more than one row, or no font with Chinese characters is installed.
    UnusableInputError
        If a frame lacks a column (for a finding without a field: has none of
        :data:`COPY_COLUMNS`), or the institution has no value in the finding's year (or, by
        its evidence, is not in its own peer group).
    """
    row = _finding_row(finding)
    field = row.get("field")
    institution_id = row.get("institution_id")
    finding_year = row.get("year")
    if institution_id is None or (not field and finding_year is None):
        raise EnergyAuditError(
            f"finding {row.get('finding_id')!r} ({row.get('rule_id')}) names "
            + ("no institution" if institution_id is None else "no field and no year")
            + ": there is no value to draw"
        )
    evidence = _evidence(row)
    rule_id = row.get("rule_id")
    if not field:
        return _plot_copied_finding(
            row, evidence, returns_with_peers, history=history, year=year, id_column=id_column
        )
    peer_keys = list((evidence or {}).get("peer_keys") or [])
    frame = _frame(
        returns_with_peers,
        [
            id_column,
            field,
            *(peer_keys or peer_groups),
            *([year] if finding_year is not None else []),
        ],
        "returns_with_peers",
    )
    current = frame if finding_year is None else frame.filter(pl.col(year) == finding_year)
    own_rows = current.filter(pl.col(id_column) == institution_id)
    if own_rows.is_empty():
        raise UnusableInputError(
            f"returns_with_peers has no row of institution {institution_id!r}"
            + ("" if finding_year is None else f" in {finding_year}")
        )
    ev = evidence or {}
    method = ev.get("method")
    centre = _as_float(ev.get("median"))
    if peer_keys:
        peer_values = list(ev.get("peer_values") or [])
        group, group_zh = _evidence_peer_group(current, peer_keys, peer_values, year)
        if group.filter(pl.col(id_column) == institution_id).is_empty():
            named = ", ".join(f"{k}={v}" for k, v in zip(peer_keys, peer_values, strict=True))
            raise UnusableInputError(
                f"institution {institution_id!r} is not in the peer group of its finding's "
                f"evidence ({named})"
            )
    else:
        group, group_zh = _fallback_peer_group(
            current, own_rows.row(0, named=True), field, peer_groups, min_group_size
        )
    peer_median = centre if (peer_keys or method == "model") else None
    change_median = centre if evidence is not None and peer_median is None else None
    previous_year, previous_value = ev.get("previous_year"), _as_float(ev.get("previous_value"))
    previous = (
        (int(previous_year), previous_value)
        if previous_year is not None and previous_value is not None
        else None
    )
    band = _band(row.get("expected_low"), row.get("expected_high"))
    suggested = _as_float(row.get("suggested_value"))
    factor = _as_float(ev.get("slip_factor"))
    suggested_label = (
        f"建议值 {_fmt(suggested)}（疑似单位错误，填报值 ÷ {_factor_text(factor)}）"
        if suggested is not None and factor is not None
        else None
    )
    year_zh = "" if finding_year is None else f"，{finding_year}年"

    with chart_style():
        fig = new_figure(2)
        left, right = fig.subplots(1, 2)
        plot_peer_distribution(
            group,
            field,
            institution_id,
            ax=left,
            log=log,
            band=band,
            suggested=suggested,
            suggested_label=suggested_label,
            median=peer_median,
            median_label="模型预期值" if method == "model" else "同类中位数",
            title=f"同类单位分布（{group_zh}{year_zh}）",
            id_column=id_column,
        )
        plot_history(
            history if history is not None else returns_with_peers,
            field,
            institution_id,
            year=year,
            ax=right,
            suggested=suggested,
            suggested_label=suggested_label,
            expected=band,
            expected_value=change_median,
            previous=previous,
            current_year=finding_year,
            id_column=id_column,
        )
        message = row.get("message_zh") or f"{institution_id} {chinese_header(field)}"
        fig.suptitle(_heading(rule_id, message))
    return fig


_UNIT_AFTER_NUMBER: Final = re.compile(
    r"(?<=\d) ([A-Za-z]+[²³]?(?:/[A-Za-z]+[²³]?)?|[²³]?m[²³])(?![A-Za-z0-9])"
)
"""A unit written in Latin letters after a number and a space (``49.67 kgce/m²``)."""


def _units_zh(text: str) -> str:
    """Write the units of a message in Chinese, as the axes are (``kWh`` → ``千瓦时``).

    A unit is translated when it follows a number and every part of it (``kgce/m²``: ``kgce``
    and ``m²``) is a unit of the contract (:func:`energy_audit.contract.unit_label_zh`); other
    text is left as it is.

    Examples
    --------
    >>> _units_zh("单位面积能耗 49.67 kgce/m²，如电力 158301 kWh、水 1907 m³，稳健z = 4.1")
    '单位面积能耗 49.67 千克标准煤/平方米，如电力 158301 千瓦时、水 1907 立方米，稳健z = 4.1'
    """

    def chinese(match: re.Match[str]) -> str:
        parts = [contract.unit_label_zh(part) for part in match.group(1).split("/")]
        if any(part is None for part in parts):
            return match.group(0)
        return " " + "/".join(parts)  # type: ignore[arg-type]

    return _UNIT_AFTER_NUMBER.sub(chinese, text)


def _heading(rule_id: Any, message: str) -> str:
    """Title of a finding's figure: the rule id and the Chinese message (units in Chinese)."""
    text = _units_zh(message)
    return _wrap_zh(f"{rule_id}：{text}" if rule_id else text, TITLE_WRAP_CHARS)


def _plot_copied_finding(
    row: Mapping[str, Any],
    evidence: Mapping[str, Any] | None,
    returns: pl.DataFrame | pl.LazyFrame,
    *,
    history: pl.DataFrame | pl.LazyFrame | None,
    year: str,
    id_column: str,
) -> Figure:
    """Evidence of a finding without a field (STA-007, STA-008): the return compared.

    With evidence, the returns compared are those it names: the institution's return of
    ``previous_year`` (default its latest earlier one) and the returns of ``related_ids``
    (none when it names none); without, the latest earlier return and every identical return
    of the year (:func:`plot_identical_returns`).
    """
    names = set(_names(returns))
    columns = [c for c in COPY_COLUMNS if c in names]
    if not columns:
        raise UnusableInputError(
            f"returns_with_peers has none of the columns {', '.join(COPY_COLUMNS)} to compare "
            f"for finding {row.get('finding_id')!r} ({row.get('rule_id')}) without a field"
        )
    institution_id, finding_year = row["institution_id"], row["year"]
    previous_year = None if evidence is None else evidence.get("previous_year")
    identical_ids = None if evidence is None else list(evidence.get("related_ids") or [])
    with chart_style():
        fig = new_figure(2)  # the title wraps at TITLE_WRAP_CHARS: two panels wide
        plot_identical_returns(
            returns,
            institution_id,
            finding_year,
            columns,
            history=history,
            previous_year=None if previous_year is None else int(previous_year),
            identical_ids=identical_ids,
            ax=fig.subplots(),
            year=year,
            id_column=id_column,
        )
        message = row.get("message_zh") or f"{institution_id} {finding_year}年填报值"
        fig.suptitle(_heading(row.get("rule_id"), message))
    return fig


EVIDENCE_DPI: Final[int] = 110
"""Resolution of the evidence files written by :func:`write_evidence` [dots per inch]."""

_UNSAFE = re.compile(r"[^0-9A-Za-z_.-]+")


def write_evidence(
    findings: pl.DataFrame,
    data: pl.DataFrame | pl.LazyFrame,
    out_dir: str | os.PathLike[str],
    *,
    returns: int = 20,
    **plot_options: Any,
) -> pl.DataFrame:
    """Draw the evidence of the statistical findings the panel reviews first, one PNG each.

    Parameters
    ----------
    findings : polars.DataFrame
        Findings (data contract §5), e.g. :attr:`energy_audit.verify.run.VerifyResult.findings`;
        the statistical findings of the ``returns`` returns of highest priority are drawn
        (:func:`energy_audit.verify.statistical.top_findings`).
    data : polars.DataFrame or polars.LazyFrame
        The returns of the year and earlier years with the fields and peer-group columns the
        findings name (:func:`energy_audit.verify.statistical.evidence_data`).
    out_dir : str or os.PathLike
        Folder written (created): ``NNN_<rule>_<institution>_<field>.png`` (NNN the return's
        rank, from 001) and ``index.csv``.
    returns : int, default 20
        Number of returns (institution and year) whose findings are drawn.
    **plot_options
        Passed to :func:`plot_finding` (``peer_groups``, ``min_group_size``, ``log`` …).

    Returns
    -------
    polars.DataFrame
        One row per finding drawn, also written to ``index.csv`` (UTF-8 with BOM, by
        :func:`energy_audit.io.writers.write_csv`, its canonical headers kept so that programs
        read it back; formula-like text escaped): ``rank``,
        ``finding_id``, ``rule_id``, ``institution_id``, ``year``, ``field``, ``file`` (the
        PNG's name, null where nothing could be drawn) and ``note`` (why not: the message of
        the error, e.g. no value of the field in ``data``). A finding that cannot be drawn
        never stops the others.
    """
    from energy_audit.verify.statistical import top_findings  # panel builds on verify

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = data.collect() if isinstance(data, pl.LazyFrame) else data
    chosen = top_findings(findings, returns)
    ranks = (
        chosen.select("institution_id", "year")
        .unique(maintain_order=True)
        .with_row_index("rank", offset=1)
    )
    chosen = chosen.join(ranks, on=["institution_id", "year"], how="left", nulls_equal=True)
    try:  # without a CJK font nothing can be drawn: say so once per finding, try none
        cjk_font()
        no_font = None
    except MissingFontError as exc:
        no_font = str(exc)
    rows = []
    for row in chosen.iter_rows(named=True):
        name = "_".join(
            _UNSAFE.sub("-", str(part))
            for part in (row["rule_id"], row["institution_id"], row["field"] or "return")
        )
        file: str | None = f"{row['rank']:03d}_{name}.png"
        note = None
        field = row["field"]
        if field in frame.columns and not frame.schema[field].is_numeric():
            file = None
            note = (
                f"{row['rule_id']} judges a batch of returns (one {field}), not a figure: "
                "no chart, the numbers are in the message"
            )
        elif no_font is not None:
            file, note = None, no_font
        else:
            try:
                fig = plot_finding(row, frame, **plot_options)
                fig.savefig(out / str(file), dpi=EVIDENCE_DPI)
            except EnergyAuditError as exc:
                file, note = None, str(exc)
        rows.append(
            {
                "rank": row["rank"],
                "finding_id": row["finding_id"],
                "rule_id": row["rule_id"],
                "institution_id": row["institution_id"],
                "year": row["year"],
                "field": row["field"],
                "file": file,
                "note": note,
            }
        )
    index = pl.DataFrame(
        rows,
        schema={
            "rank": pl.UInt32,
            "finding_id": pl.String,
            "rule_id": pl.String,
            "institution_id": pl.String,
            "year": pl.Int64,
            "field": pl.String,
            "file": pl.String,
            "note": pl.String,
        },
    )
    write_csv(index, out / "index.csv", translate_headers=False)
    return index
