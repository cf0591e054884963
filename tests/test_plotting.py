import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib
import pytest
from matplotlib import font_manager

from energy_audit import plotting
from energy_audit.errors import EnergyAuditError
from energy_audit.plotting import CJK_FONT_FALLBACK, chart_style, cjk_font, new_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = ("单位建筑面积能耗(千克标准煤/平方米)", "人均综合能耗(千克标准煤/人)")
MISSING_GLYPH = r"Glyph .* missing from font"


def _draw_chinese(path: Path) -> None:
    fig = new_figure()
    ax = fig.subplots()
    ax.plot([-2.5, 0.0, 3.0], [-1.0, 2.0, 0.5])  # negative ticks: the minus sign
    ax.set_xlabel(LABELS[0])
    ax.set_ylabel(LABELS[1])
    ax.set_title("核查发现：天津市和平区 2023年")
    ax.annotate("本单位 −12.5 ±3", xy=(0.0, 2.0))
    fig.savefig(path)


def test_cjk_font_is_an_installed_font_of_the_fallback_list():
    name = cjk_font()
    assert name in CJK_FONT_FALLBACK
    path = font_manager.findfont(
        font_manager.FontProperties(family=name), fallback_to_default=False
    )
    assert Path(path).is_file()


def test_chinese_labels_render_without_missing_glyphs(tmp_path):
    path = tmp_path / "chinese.png"
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=MISSING_GLYPH, category=UserWarning)
        with chart_style():
            _draw_chinese(path)
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert path.stat().st_size > 5_000


def test_the_glyph_check_catches_a_font_without_chinese(tmp_path):
    # Control: the same figure in matplotlib's own font does warn, so the test above can fail.
    with (
        matplotlib.rc_context({"font.family": ["DejaVu Sans"]}),
        pytest.warns(UserWarning, match=MISSING_GLYPH),
    ):
        _draw_chinese(tmp_path / "tofu.png")


def test_figure_drawn_after_the_style_context_keeps_its_chinese_font(tmp_path):
    # Jupyter draws a returned figure after the cell, outside chart_style().
    with chart_style():
        fig = new_figure()
        ax = fig.subplots()
        ax.set_xlabel(LABELS[0])
        ax.set_title(LABELS[1])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=MISSING_GLYPH, category=UserWarning)
        fig.savefig(tmp_path / "later.png")
    assert (tmp_path / "later.png").stat().st_size > 0


def test_chart_style_sets_fonts_and_restores_global_settings():
    before = matplotlib.rcParams.copy()
    with chart_style():
        assert matplotlib.rcParams["font.family"][0] == cjk_font()
        assert matplotlib.rcParams["font.sans-serif"][0] == cjk_font()
        assert matplotlib.rcParams["axes.unicode_minus"] is False
        assert matplotlib.rcParams["figure.dpi"] == plotting.FIGURE_DPI
    assert matplotlib.rcParams.copy() == before


def test_new_figure_is_not_registered_with_pyplot():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    with chart_style():
        fig = new_figure(2)
    assert plt.get_fignums() == before
    assert fig.get_size_inches()[0] == pytest.approx(2 * plotting.FIGURE_SIZE_IN[0])


def test_importing_the_library_changes_no_settings_and_picks_no_backend():
    # rcParams.copy(): reading rcParams["backend"] would itself resolve a backend.
    code = (
        "import sys, matplotlib\n"
        "before = matplotlib.rcParams.copy()\n"
        "import energy_audit.plotting, energy_audit.panel.evidence\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert matplotlib.rcParams.copy() == before\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_cjk_font_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(plotting, "CJK_FONT_FALLBACK", ["No Such Font SC", "Another Missing"])
    with pytest.raises(EnergyAuditError, match=r"No Such Font SC, Another Missing") as info:
        cjk_font()
    message = str(info.value)
    assert "pip install 'energy_audit[fonts]'" in message
    assert "apt-get install fonts-wqy-microhei" in message
    assert "微软雅黑" in message and "苹方" in message
    english = info.value.message("en")
    assert "no font with Chinese characters" in english and "energy_audit[fonts]" in english
    with pytest.raises(plotting.MissingFontError), chart_style():
        pass


def test_the_fonts_extra_serves_when_matplotlib_knows_no_cjk_font():
    # A machine without system CJK fonts: matplotlib's list holds none, the extra's font is
    # registered without touching the cache. Run apart: the font list is process-wide.
    code = (
        "from matplotlib import font_manager as fm\n"
        "from energy_audit import plotting\n"
        "fm.fontManager.ttflist = [e for e in fm.fontManager.ttflist\n"
        "    if e.name not in plotting.CJK_FONT_FALLBACK]\n"
        "assert not [e for e in fm.fontManager.ttflist if e.name in plotting.CJK_FONT_FALLBACK]\n"
        "print(plotting.cjk_font())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "Noto Sans SC"
