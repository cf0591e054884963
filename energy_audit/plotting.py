"""Chart style: one place for the fonts, sizes and resolution of every chart the library draws.

Charts for the panel and the reports carry Chinese labels, so they need a font with CJK glyphs.
:func:`cjk_font` finds the first installed one of :data:`CJK_FONT_FALLBACK` (the fonts of Debian,
Windows and macOS), and :func:`chart_style` is the context manager every chart of the library is
drawn in. Nothing here changes matplotlib's global settings or chooses a backend: importing the
library leaves a Jupyter session as it was.

Figures are made as :class:`matplotlib.figure.Figure` objects (see :func:`new_figure`), not
through :mod:`matplotlib.pyplot`: they are not registered with pyplot, so a loop over hundreds
of findings keeps no figures alive, a notebook shows a returned figure once, and saving to PNG
picks matplotlib's Agg renderer by itself, whatever backend the user runs.

Where the font comes from, in order: a font of :data:`CJK_FONT_FALLBACK` that matplotlib already
knows; the Noto Sans SC font of the ``fonts`` extra (``pip install 'energy_audit[fonts]'``, the
PyPI package ``pylopdf-fonts-zh-cn``, SIL Open Font License), registered with
:meth:`~matplotlib.font_manager.FontManager.addfont` without touching matplotlib's cache; a CJK
font installed on the system after matplotlib wrote its font cache (found on disk and registered
the same way, so ``apt-get install fonts-wqy-microhei`` works without deleting the cache).

Notes
-----
The font names are written into each text's font properties while the figure is drawn inside
:func:`chart_style`, so Chinese text still renders when the figure is drawn later, outside the
context (as Jupyter does after the cell has run).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from matplotlib import font_manager, rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from energy_audit.errors import EnergyAuditError

CJK_FONT_FALLBACK: Final[list[str]] = [
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "Noto Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "Heiti SC",
    "STHeiti",
    "Arial Unicode MS",
    # Pan-CJK collections of which matplotlib may list another face first: same glyphs.
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "Source Han Sans",
]
"""CJK fonts looked for, in order of preference (Debian/Linux, Windows, macOS)."""

LATIN_FALLBACK: Final[str] = "DejaVu Sans"
"""Font (shipped with matplotlib) used for glyphs the CJK font lacks."""

FIGURE_SIZE_IN: Final[tuple[float, float]] = (6.4, 4.2)
"""Size [inch] of a chart with one panel."""

FIGURE_DPI: Final[float] = 100.0
"""Resolution [dots per inch] of figures on screen and in saved PNG files."""

FONT_SIZE_PT: Final[float] = 10.0
"""Base font size [pt]; titles are one step larger, tick labels one step smaller."""

INSTALL_HINT_ZH: Final = (
    "安装方法：pip install 'energy_audit[fonts]'（随包提供思源黑体 Noto Sans SC）；"
    "或在 Debian/Ubuntu 上 apt-get install fonts-wqy-microhei；"
    "Windows 自带微软雅黑，macOS 自带苹方。"
)
INSTALL_HINT_EN: Final = (
    "Install one: pip install 'energy_audit[fonts]' (ships Noto Sans SC), or on Debian/Ubuntu "
    "apt-get install fonts-wqy-microhei; Windows ships Microsoft YaHei, macOS PingFang SC."
)
"""How to get a CJK font, in the messages of :class:`MissingFontError` and the CLI warning."""

# File names of CJK fonts looked for on disk when matplotlib's cached font list misses them.
_CJK_FILE_NAME: Final = re.compile(
    r"wqy|wenquanyi|notosanscjk|notosanssc|sourcehansans|msyh|simhei|pingfang|hiragino|heiti",
    re.IGNORECASE,
)


class MissingFontError(EnergyAuditError):
    """No font with Chinese characters is available for charts."""


@functools.cache
def _register_fonts() -> None:
    """Make CJK fonts that matplotlib's cached font list misses known to it (once a process)."""
    known = {entry.name for entry in font_manager.fontManager.ttflist}
    if any(name in known for name in CJK_FONT_FALLBACK):
        return
    try:  # the ``fonts`` extra
        import pylopdf_fonts_zh_cn

        font_manager.fontManager.addfont(str(pylopdf_fonts_zh_cn.sans_path()))
        return
    except (ImportError, OSError, RuntimeError):
        pass
    cached = {entry.fname for entry in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in cached and _CJK_FILE_NAME.search(Path(path).name.replace("-", "")):
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                font_manager.fontManager.addfont(path)


def installed_cjk_fonts() -> list[str]:
    """Return the fonts of :data:`CJK_FONT_FALLBACK` that matplotlib can use, in that order.

    Returns
    -------
    list of str
        Font family names known to :data:`matplotlib.font_manager.fontManager`.
    """
    _register_fonts()
    known = {entry.name for entry in font_manager.fontManager.ttflist}
    return [name for name in CJK_FONT_FALLBACK if name in known]


def has_cjk_font() -> bool:
    """Tell whether a font with Chinese characters is available for charts."""
    return bool(installed_cjk_fonts())


def cjk_font() -> str:
    """Return the first installed font of :data:`CJK_FONT_FALLBACK`.

    Returns
    -------
    str
        A font family name matplotlib knows, e.g. ``WenQuanYi Micro Hei``.

    Raises
    ------
    MissingFontError
        If none of the fonts is available; the message lists the fonts looked for and how to
        install one (the ``fonts`` extra, Debian, Windows, macOS).
    """
    found = installed_cjk_fonts()
    if found:
        return found[0]
    looked_for = ", ".join(CJK_FONT_FALLBACK)
    raise MissingFontError(
        f"没有可用于图表的中文字体（已查找：{looked_for}）。{INSTALL_HINT_ZH}",
        f"no font with Chinese characters found for charts; looked for {looked_for}. "
        + INSTALL_HINT_EN,
    )


def style_rc() -> dict[str, Any]:
    """Return the matplotlib settings of :func:`chart_style`.

    Returns
    -------
    dict
        rcParams: the installed CJK fonts first (then :data:`LATIN_FALLBACK`) as ``font.family``
        and ``font.sans-serif``, ``axes.unicode_minus`` off (CJK fonts lack U+2212), sizes and
        resolution.

    Raises
    ------
    MissingFontError
        If no CJK font is available (see :func:`cjk_font`).
    """
    fonts = [cjk_font(), *installed_cjk_fonts()[1:], LATIN_FALLBACK]
    return {
        # Concrete names, not the generic "sans-serif": text keeps them when drawn later.
        "font.family": fonts,
        "font.sans-serif": fonts,
        "font.size": FONT_SIZE_PT,
        "axes.titlesize": "large",
        "axes.labelsize": "medium",
        "xtick.labelsize": "small",
        "ytick.labelsize": "small",
        "legend.fontsize": "small",
        "legend.frameon": False,
        "figure.titlesize": "large",
        "axes.unicode_minus": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "figure.figsize": FIGURE_SIZE_IN,
        "figure.dpi": FIGURE_DPI,
        "savefig.dpi": FIGURE_DPI,
        "pdf.fonttype": 42,
        "svg.fonttype": "none",
    }


@contextlib.contextmanager
def chart_style() -> Iterator[None]:
    """Draw charts in the library's style (fonts with Chinese glyphs, sizes, resolution).

    A :func:`matplotlib.rc_context`: the settings of :func:`style_rc` hold inside the ``with``
    block and matplotlib's global settings are restored after it.

    Yields
    ------
    None

    Raises
    ------
    MissingFontError
        If no CJK font is available (see :func:`cjk_font`).

    Examples
    --------
    >>> import io
    >>> from energy_audit.plotting import chart_style, new_figure
    >>> with chart_style():
    ...     fig = new_figure()
    ...     ax = fig.subplots()
    ...     label = ax.set_xlabel("单位建筑面积能耗(千克标准煤/平方米)")
    >>> fig.savefig(io.BytesIO(), format="png")
    """
    with rc_context(style_rc()):
        yield


def new_figure(ncols: int = 1, *, width_in: float | None = None) -> Figure:
    """Return a new figure, not registered with pyplot, in the current style.

    Call inside :func:`chart_style`.

    Parameters
    ----------
    ncols : int, default 1
        Number of panels side by side the figure is meant for (it widens accordingly).
    width_in : float, optional
        Width [inch]; default :data:`FIGURE_SIZE_IN` per panel.

    Returns
    -------
    matplotlib.figure.Figure
        An empty figure with constrained layout.
    """
    width, height = FIGURE_SIZE_IN
    return Figure(
        figsize=(width_in if width_in is not None else width * ncols, height),
        dpi=FIGURE_DPI,
        layout="constrained",
    )


def apply_fonts(ax: Axes) -> None:
    """Give an axes' title, axis labels and tick labels the fonts of :func:`chart_style`.

    Texts of axes made outside :func:`chart_style` (e.g. by ``plt.subplots()`` in a notebook)
    keep the font they were made with, which may lack Chinese glyphs; charts of the library call
    this on every axes they draw on. Legends and annotations made inside the style need nothing.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes; changed in place.

    Raises
    ------
    MissingFontError
        If no CJK font is available (see :func:`cjk_font`).
    """
    family = style_rc()["font.family"]
    for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
        text.set_fontfamily(family)
    ax.tick_params(labelfontfamily=family)
