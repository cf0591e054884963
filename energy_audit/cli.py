"""Command line: ``energy-audit``. Thin: parses arguments, calls the library, prints.

Every message, table and ``--help`` text is in Chinese; ``--lang en`` (a global option, before
the command) or the environment variable ``ENERGY_AUDIT_LANG=en`` switches to English. Each text
is written once, as a pair, through :func:`_t` (messages) or :func:`_help` (help texts); the
language is known before the help is shown because :class:`_Group` reads it from the arguments
before typer parses them.

Exit codes (for scripts): 0 done; 1 unusable input (one clear message, no traceback);
2 usage error (wrong or missing arguments); 3 ``directory update`` refused the snapshot because
it has error findings (the store is unchanged). Personal data (contacts) is never printed.

Long work (``synth``, ``demo``, ``read``, ``verify``) shows a progress bar with the stage and its
counts on a terminal, and one line per stage (``[2/5] 核查…``) when stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import inspect
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Final

import polars as pl
import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from typer import rich_utils
from typer._click import exceptions as click_errors  # the click classes typer raises
from typer.core import TyperCommand, TyperGroup

from energy_audit.errors import EnergyAuditError, Lang
from energy_audit.glossary import term, terms

EXIT_OK = 0
EXIT_UNUSABLE_INPUT = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3

LANG_ENV: Final = "ENERGY_AUDIT_LANG"
"""Environment variable giving the language (``zh`` or ``en``) when ``--lang`` is not given."""

LANGS: Final[tuple[Lang, ...]] = ("zh", "en")

_XLSX_MAX_ROWS: Final = 1_048_576
"""Rows of a worksheet (Excel's limit): ``read --out`` leaves a larger data sheet out."""

QUARANTINE_SHOWN: Final = 20
"""Quarantined cells ``read`` lists by default [entries]; the rest are counted."""

# ------------------------------------------------------------------------------- languages


def _lang_of(args: Sequence[str], environ: Mapping[str, str]) -> Lang:
    """Return the language of a run: ``--lang`` before the command, else the environment.

    An unknown value falls back to Chinese here; the option itself then reports it.
    """
    tokens = iter(args)
    for token in tokens:
        value = None
        if token == "--lang":
            value = next(tokens, "")
        elif token.startswith("--lang="):
            value = token.partition("=")[2]
        elif not token.startswith("-"):
            break  # the command: options after it are the command's
        if value is not None:
            value = value.strip().lower()
            if value in LANGS:
                return value  # type: ignore[return-value]
            break
    env = environ.get(LANG_ENV, "").strip().lower()
    return env if env in LANGS else "zh"  # type: ignore[return-value]


_lang: Lang = _lang_of(sys.argv[1:], os.environ)
"""Language of this run (set again from the arguments by :meth:`_Group.main`)."""

_HELP: dict[str, tuple[str, str]] = {}
"""Every help text, in either language → (Chinese, English): to relabel the commands."""


def _t(zh: str, en: str) -> str:
    """Return a message in the language of this run: ``zh`` (default) or ``en``."""
    return en if _lang == "en" else zh


def _help(zh: str, en: str) -> str:
    """Return a help text in the language of this run, remembered for :func:`_relabel`."""
    pair = (inspect.cleandoc(zh), inspect.cleandoc(en))
    for text in pair:
        if _HELP.setdefault(text, pair) != pair:  # one text, two translations: relabel fails
            raise ValueError(f"help text {text!r} has two translations")
    return _t(*pair)


def _relabel(command: Any) -> None:
    """Put every help text of ``command`` and its subcommands in the language of this run."""
    index = 1 if _lang == "en" else 0
    for attr in ("help", "short_help"):
        text = getattr(command, attr, None)
        if text and inspect.cleandoc(text) in _HELP:
            setattr(command, attr, _HELP[inspect.cleandoc(text)][index])
    for param in getattr(command, "params", []):
        text = getattr(param, "help", None)
        if text and inspect.cleandoc(text) in _HELP:
            param.help = _HELP[inspect.cleandoc(text)][index]
        if getattr(param, "is_flag", False) and not getattr(param, "count", False):
            param.metavar = ""  # a flag takes no value: typer would show "<bool>"
    for sub in getattr(command, "commands", {}).values():
        _relabel(sub)


def _label_typer_help() -> None:
    """Set the words typer's help and error panels print around our texts."""
    rich_utils.ARGUMENTS_PANEL_TITLE = _t("参数", "Arguments")
    rich_utils.OPTIONS_PANEL_TITLE = _t("选项", "Options")
    rich_utils.COMMANDS_PANEL_TITLE = _t("命令", "Commands")
    rich_utils.ERRORS_PANEL_TITLE = _t("错误", "Error")
    rich_utils.DEFAULT_STRING = _t("[默认：{}]", "[default: {}]")
    rich_utils.ENVVAR_STRING = _t("[环境变量：{}]", "[env var: {}]")
    rich_utils.REQUIRED_LONG_STRING = _t("[必填]", "[required]")
    rich_utils.ABORTED_TEXT = _t("已中止。", "Aborted.")
    rich_utils.RICH_HELP = _t(
        "运行 [blue]'{command_path} {help_option}'[/] 查看帮助。",
        "Try [blue]'{command_path} {help_option}'[/] for help.",
    )


def _usage_message_zh(exc: Exception) -> str | None:
    """Return the Chinese message of a usage error typer raises (None: keep its own)."""
    if isinstance(exc, click_errors.NoArgsIsHelpError):
        return None
    if isinstance(exc, click_errors.BadParameter):
        hint = exc.param_hint or (exc.param.get_error_hint() if exc.param else None)
        if isinstance(hint, list | tuple):
            hint = " / ".join(hint)
        hint = hint or ""
        if isinstance(exc, click_errors.MissingParameter):
            kind = exc.param_type or (exc.param.param_type_name if exc.param else "")
            return f"缺少{'选项' if kind == 'option' else '参数'} {hint}"
        message = exc.message
        for pattern, template in (
            (r"(?:Value error, )?'(.*)' is not one of (.*)\.", "“{0}”不是可选值（{1}）之一"),
            (r"Input should be a valid integer.*", "应为整数"),
            (r"Input should be a valid number.*", "应为数字"),
            (r"Input should be greater than or equal to (.*)", "应不小于 {0}"),
            (r"Input should be less than or equal to (.*)", "应不大于 {0}"),
            (r"Input should be greater than (.*)", "应大于 {0}"),
            (r"Input should be less than (.*)", "应小于 {0}"),
        ):
            m = re.fullmatch(pattern, message)
            if m:
                message = template.format(*m.groups())
                break
        return f"{hint} 的值无效：{message}"
    if isinstance(exc, click_errors.NoSuchOption) and exc.option_name in ("--lang", "--version"):
        return (
            f"{exc.option_name} 是全局选项，须写在命令之前，例如 energy-audit {exc.option_name}"
            + (" en read 文件" if exc.option_name == "--lang" else "")
        )
    if isinstance(exc, click_errors.NoSuchOption):
        also = f"（是否想用 {'、'.join(exc.possibilities)}？）" if exc.possibilities else ""
        return f"没有选项 {exc.option_name}{also}"
    if isinstance(exc, click_errors.BadOptionUsage) and "requires an argument" in exc.message:
        return f"选项 {exc.option_name} 需要一个值"
    message = str(exc.message)  # type: ignore[attr-defined]
    for pattern, template in (
        (r"No such command '(.*)'\.", "没有命令 {0}"),
        (r"Missing command\.", "缺少命令"),
        (r"Got unexpected extra arguments?(?:\(s\))? \((.*)\)", "多余的参数：{0}"),
    ):
        m = re.fullmatch(pattern, message)
        if m:
            return template.format(*m.groups())
    return None


class _LocalizedUsageError(click_errors.UsageError):
    """A usage error whose message is already in the language of the run."""


@contextlib.contextmanager
def _usage_errors_in_language() -> Iterator[None]:
    """Re-raise typer's usage errors with their message in Chinese (English: unchanged)."""
    try:
        yield
    except _LocalizedUsageError:
        raise
    except click_errors.UsageError as exc:
        message = _usage_message_zh(exc) if _lang == "zh" else None
        if message is None:
            raise
        raise _LocalizedUsageError(message, exc.ctx) from None


class _Localized:
    """Help option text and usage line in the language of the run (mixed into typer's classes)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.help = _t("显示此帮助并退出。", "Show this message and exit.")
            option.metavar = ""  # a flag: no "<bool>"
        return option

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        pieces = self.collect_usage_pieces(ctx)  # type: ignore[attr-defined]
        formatter.write_usage(ctx.command_path, " ".join(pieces), prefix=_t("用法：", "Usage: "))


class _Command(_Localized, TyperCommand):
    """A command of ``energy-audit``."""


class _Group(_Localized, TyperGroup):
    """The ``energy-audit`` group: sets the language before anything is parsed or shown."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, **extra: Any) -> Any:
        global _lang, console, errors
        _lang = _lang_of(sys.argv[1:] if args is None else list(args), os.environ)
        console, errors = Console(), Console(stderr=True)
        _relabel(self)
        _label_typer_help()
        return super().main(args, *rest, **extra)

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _usage_errors_in_language():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors_in_language():
            return super().invoke(ctx)


app = typer.Typer(
    name="energy-audit",
    cls=_Group,
    help=_help(
        "核查公共机构能源资源消费统计年报（天津市机关事务管理局）。",
        "Verify public institutions' yearly energy and water returns (公共机构能源资源消费统计).",
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
directory_app = typer.Typer(
    cls=_Group,
    help=_help(
        "公共机构名录库：季度检查、比对、更新和历史。",
        "The institution directory (名录库): quarterly check, diff, update and history.",
    ),
    no_args_is_help=True,
)
app.add_typer(directory_app, name="directory")
console = Console()
errors = Console(stderr=True)


class _LangChoice(StrEnum):
    zh = "zh"
    en = "en"


def _version() -> str:
    try:
        return metadata.version("energy_audit")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        from energy_audit import __version__

        return __version__


def _show_version(value: bool) -> None:
    if value:
        _say(f"energy-audit {_version()}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _global_options(
    lang: Annotated[
        _LangChoice,
        typer.Option(
            "--lang",
            envvar=LANG_ENV,
            help=_help(
                "界面语言：zh（中文，默认）或 en（英文）；写在命令之前。",
                "Language of messages, help and workbooks: zh (Chinese, default) or en "
                "(English); put it before the command.",
            ),
        ),
    ] = _LangChoice.zh,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_show_version,
            help=_help("显示 energy_audit 的版本并退出。", "Show energy_audit's version and exit."),
        ),
    ] = False,
) -> None:
    global _lang
    _lang = lang.value  # type: ignore[assignment]


# ---------------------------------------------------------------------------- errors, paths

_OS_REASONS: Final[Mapping[int, tuple[str, str]]] = {
    errno.EEXIST: ("已有同名文件", "a file of that name exists"),
    errno.ENOTDIR: ("路径中有一段是文件而不是文件夹", "part of the path is a file, not a folder"),
    errno.ENOENT: ("文件或文件夹不存在", "no such file or folder"),
    errno.EACCES: ("没有权限", "permission denied"),
    errno.EPERM: ("不允许此操作", "operation not permitted"),
    errno.ENOSPC: ("磁盘空间不足", "no space left on the device"),
    errno.EISDIR: ("这是一个文件夹", "it is a folder"),
    errno.EROFS: ("文件系统只读", "read-only file system"),
}


class _Reported(contextlib.AbstractContextManager["_Reported"]):
    """Turn the library's errors and the system's file errors into one message and exit 1."""

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, EnergyAuditError):
            raise _fail(exc.message(_lang)) from None
        if isinstance(exc, OSError) and not isinstance(exc, click_errors.ClickException):
            zh, en = _OS_REASONS.get(exc.errno or -1, (exc.strerror or str(exc),) * 2)
            if exc.filename:
                message = _t(
                    f"{exc.filename}：无法读写：{zh}", f"{exc.filename}: cannot read or write: {en}"
                )
            else:
                message = _t(f"无法读写文件：{zh}", f"cannot read or write a file: {en}")
            raise _fail(message) from None
        return None


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    r"""Show control characters of file text as escapes (``\x1b``), so none reaches the terminal.

    Names, headers and cells come from the files people send: an escape sequence in them would
    otherwise drive the terminal (clear it, set a link, change colours).
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def _say(*parts: str, style: str | None = None) -> None:
    """Print a message on stdout: plain text (no markup), wrapped by the terminal, not rich."""
    console.print(
        *(_printable(p) for p in parts),
        sep="",
        style=style,
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _fail(message: str) -> typer.Exit:
    """Print ``message`` as one line on stderr; return the exit (1) to raise."""
    message = _printable(" ".join(line.strip() for line in message.splitlines() if line.strip()))
    errors.print(
        Text.assemble((_t("错误：", "error: "), "bold red"), message),
        highlight=False,
        soft_wrap=True,
    )
    return typer.Exit(EXIT_UNUSABLE_INPUT)


def _warn_if_no_cjk_font() -> None:
    """Warn once on stderr, with the install command, that charts cannot be drawn (no CJK font)."""
    from energy_audit.plotting import INSTALL_HINT_EN, INSTALL_HINT_ZH, has_cjk_font

    if not has_cjk_font():
        errors.print(
            Text.assemble(
                (_t("警告：", "warning: "), "bold yellow"),
                _t(
                    f"没有可用于图表的中文字体，本次不绘制图表。{INSTALL_HINT_ZH}",
                    f"no font with Chinese characters: no chart is drawn. {INSTALL_HINT_EN}",
                ),
            ),
            highlight=False,
            soft_wrap=True,
        )


def _row(table: Table, *values: object) -> None:
    """Add a row of plain text (a value such as ``[x]`` is not taken for markup)."""
    table.add_row(*(Text("" if v is None else _printable(str(v))) for v in values))


def _out_folder(path: Path, option: str = "--out") -> Path:
    """Check that ``path`` can be an output folder (created later if it does not exist)."""
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise typer.BadParameter(
                    _t(
                        f"{part} 是一个文件，不是文件夹：请给出输出文件夹",
                        f"{part} is a file, not a folder: give an output folder",
                    ),
                    param_hint=option,
                )
            break
    return path


def _out_file(path: Path, option: str = "--out") -> Path:
    """Check that ``path`` can be written as a file: its folder exists, it is not a folder."""
    if path.is_dir():
        raise typer.BadParameter(
            _t(f"{path} 是一个文件夹：请给出文件名", f"{path} is a folder: give a file name"),
            param_hint=option,
        )
    if not path.parent.is_dir():
        raise typer.BadParameter(
            _t(
                f"文件夹 {path.parent} 不存在（或不是文件夹）",
                f"the folder {path.parent} does not exist (or is not a folder)",
            ),
            param_hint=option,
        )
    return path


def _years(text: str) -> list[int]:
    m = re.fullmatch(r"\s*(\d{4})\s*(?:[-–~]\s*(\d{4})\s*)?", text)
    if not m:
        raise typer.BadParameter(
            _t(
                f"“{text}”：请给出年份（2024）或年份范围（2020-2024）",
                f"{text!r}: give a year (2024) or a range (2020-2024)",
            ),
            param_hint="--years",
        )
    first = int(m.group(1))
    last = int(m.group(2) or first)
    if last < first:
        raise typer.BadParameter(
            _t(f"“{text}”：结束年份早于起始年份", f"{text!r}: the range ends before it starts"),
            param_hint="--years",
        )
    return list(range(first, last + 1))


# -------------------------------------------------------------------------------- progress


class _Progress:
    """Show the stages of a command: a rich bar on a terminal, else one line per stage.

    Parameters
    ----------
    stages : sequence of str
        The stages expected, in order (keys of the glossary's ``stage`` domain), for the
        ``[i/n]`` numbering; a stage not listed is numbered after them.
    """

    def __init__(self, stages: Sequence[str]) -> None:
        self._stages = list(stages)
        self._seen: list[str] = []
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> _Progress:
        if errors.is_terminal:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=errors,
                transient=True,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, stage: str, done: int = 0, total: int = 0) -> None:
        """Report ``done`` of ``total`` units of ``stage`` (0 of 0: no count)."""
        if stage not in self._seen:
            self._seen.append(stage)
            if stage not in self._stages:
                self._stages.append(stage)
            label = term("stage", stage, _lang)
            text = f"[{self._stages.index(stage) + 1}/{len(self._stages)}] {label}"
            if self._bar is None:
                errors.print(f"{text}…", highlight=False, markup=False)
            else:
                if self._task is not None:
                    self._bar.update(self._task, visible=False)
                self._task = self._bar.add_task(text.replace("[", r"\["), total=total or None)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total or None)
            self._bar.refresh()  # show the new count now (the bar also refreshes by itself)


# -------------------------------------------------------------------------------- commands


@app.command(
    cls=_Command,
    help=_help(
        "写出一个合成的（类天津）城市：名录库、各年度填报数据和注入缺陷的真值表。",
        "Write a synthetic Tianjin-like city: directory, returns per year, truth table.",
    ),
)
def synth(
    out: Annotated[Path, typer.Option("--out", help=_help("输出文件夹。", "Output folder."))],
    institutions: Annotated[
        int,
        typer.Option(
            "--institutions",
            min=1,
            help=_help("名录库中的公共机构数量。", "Institutions in the directory."),
        ),
    ] = 2000,
    years: Annotated[
        str,
        typer.Option("--years", help=_help("年度，例如 2020-2024。", "Years, e.g. 2020-2024.")),
    ] = "2020-2024",
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help=_help("随机种子（种子相同，文件相同）。", "Random seed (same seed, same files)."),
        ),
    ] = 1,
    clean: Annotated[
        bool,
        typer.Option(
            "--clean",
            help=_help("不注入缺陷（干净的城市）。", "Inject no defects (a clean city)."),
        ),
    ] = False,
    formats: Annotated[
        str,
        typer.Option(
            "--formats",
            help=_help("逗号分隔：xlsx,csv,parquet。", "Comma-separated: xlsx,csv,parquet."),
        ),
    ] = "xlsx,csv,parquet",
    noise: Annotated[
        str,
        typer.Option(
            "--noise",
            help=_help(
                "年度波动类型：light（小幅，默认）、heavy（厚尾随机游走）、mixture（heavy 加真实的"
                "建筑面积变化）。",
                "Noise family: light (small, the default), heavy (heavy-tailed random walks), "
                "mixture (heavy plus real building changes).",
            ),
        ),
    ] = "light",
) -> None:
    """Write a synthetic city (``energy_audit.synthetic.write_city``)."""
    from energy_audit.synthetic import NOISE_FAMILIES, write_city

    year_list = _years(years)
    if noise not in NOISE_FAMILIES:
        known = ", ".join(NOISE_FAMILIES)
        raise typer.BadParameter(
            _t(
                f"“{noise}”：未知的波动类型（可选 {known}）",
                f"{noise!r}: unknown noise family (one of {known})",
            ),
            param_hint="--noise",
        )
    _out_folder(out)
    with _Reported(), _Progress(["synth_directory", "synth_returns", "synth_files"]) as shown:
        try:
            paths = write_city(
                out,
                institutions,
                year_list,
                seed,
                defects=not clean,
                formats=[f.strip() for f in formats.split(",") if f.strip()],
                noise=noise,
                progress=shown,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--formats") from exc
    files = sorted(
        str(p) for v in paths.values() for p in (v.values() if isinstance(v, dict) else [v])
    )
    _say(
        _t(f"已写出 {len(files)} 个文件到 {out}", f"wrote {len(files)} files to {out}"),
    )


def _terms(domain: str, counts: Mapping[str, Any]) -> str:

    sep = _t("，", ", ")
    return sep.join(f"{term(domain, k, _lang)} {v:,}" for k, v in counts.items())


def _coverage_text(counts: Mapping[str, Any]) -> str:
    return _t("，", ", ").join(
        f"{label} {counts[k]:,}"
        for k, label in terms("coverage", _lang).items()
        if isinstance(counts.get(k), int)
    )


def _findings_text(counts: Mapping[str, int]) -> str:
    """``category/severity`` → n, as ``完整性·错误 12，…``."""
    parts = []
    for key, n in counts.items():
        category, _, severity = key.partition("/")
        parts.append(
            f"{term('category', category, _lang)}·{term('severity', severity, _lang)} {n:,}"
        )
    return _t("，", ", ").join(parts) or _t("无", "none")


@app.command(
    cls=_Command,
    help=_help(
        "生成合成城市并在其上运行现有的全部环节。",
        "Make a synthetic city and run every stage that exists on it.",
    ),
)
def demo(
    out: Annotated[
        Path, typer.Option("--out", help=_help("输出文件夹。", "Output folder."))
    ] = Path("demo-out"),
    institutions: Annotated[
        int,
        typer.Option(
            "--institutions",
            min=10,
            help=_help("名录库中的公共机构数量。", "Institutions in the directory."),
        ),
    ] = 2000,
    years: Annotated[
        str,
        typer.Option("--years", help=_help("年度，例如 2020-2024。", "Years, e.g. 2020-2024.")),
    ] = "2020-2024",
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help=_help("随机种子（种子相同，文件相同）。", "Random seed (same seed, same files)."),
        ),
    ] = 2026,
) -> None:
    """Run the demonstration job (``energy_audit.demo.run_demo``)."""
    from energy_audit.demo import DEMO_STAGES, DemoSettings, run_demo
    from energy_audit.io.writers import header

    year_list = _years(years)
    _out_folder(out)
    settings = DemoSettings(
        institutions=institutions, first_year=year_list[0], last_year=year_list[-1], seed=seed
    )
    _warn_if_no_cjk_font()
    with _Reported(), _Progress(DEMO_STAGES) as shown:
        try:
            result = run_demo(out, settings, progress=shown, lang=_lang)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    rows = result.manifest["rows"]
    _say(
        _t(
            f"填报数据：读取 {rows['returns_rows_in']:,} 行，"
            f"{rows['returns_in_data']:,} 行进入数据，"
            f"{rows['returns_whole_rows_quarantined']:,} 整行和 {rows['cells_quarantined']:,} "
            "个单元格进入隔离区",
            f"returns: {rows['returns_rows_in']:,} rows read, {rows['returns_in_data']:,} in "
            f"the data, {rows['returns_whole_rows_quarantined']:,} whole rows and "
            f"{rows['cells_quarantined']:,} cells in quarantine",
        ),
    )
    for date, outcome in result.manifest["directory"].items():
        stored = _t("已存储", "stored") if outcome["stored"] else _t("未存储", "not stored")
        found = outcome["findings"]
        text = _t(
            f"名录库 {date}：{stored}，错误 {found['error']:,} 项、警告 {found['warning']:,} 项",
            f"directory {date}: {stored}, {found['error']:,} error / {found['warning']:,} "
            "warning findings",
        )
        if outcome.get("changes"):
            text += _t("；变更：", "; changes: ") + _terms("change_kind", outcome["changes"])
        _say(text)
    checked = result.manifest["verify"]
    _say(
        _t(f"核查 {checked['year']} 年：", f"verify {checked['year']}: ")
        + _coverage_text(checked["coverage"])
        + _t("；核查发现：", "; findings: ")
        + _findings_text(checked["findings"]),
    )
    table = Table(
        title=_t(
            "全市指标（核查前，按填报数据；总量之比）",
            "City indicators, as reported, before verification (ratio of sums)",
        )
    )
    formats = {
        "institutions": "{:,.0f}",
        "total_energy_tce": "{:,.2f}",
        "energy_per_capita_kgce": "{:,.2f}",
        "energy_per_m2_kgce": "{:,.2f}",
        "water_per_capita_m3": "{:,.2f}",
    }
    city = result.city.sort("year")
    # one row per indicator, one column per year: readable at 80 columns for five years
    # No column rules and no outer padding: five years and the label fit 80 columns.
    table.box, table.pad_edge, table.collapse_padding = box.SIMPLE_HEAD, False, True
    table.add_column(_t("指标", "indicator"), overflow="fold", min_width=14)
    for year in city["year"].to_list():
        table.add_column(str(year), justify="right", no_wrap=True)
    for column, fmt in formats.items():
        _row(table, header(column, _lang), *(fmt.format(v) for v in city[column].to_list()))
    console.print(table)
    _say(
        _t(
            f"输出在 {result.out_dir}（manifest.json 列出全部文件）",
            f"outputs in {result.out_dir} (manifest.json lists them)",
        ),
    )


def _without_personal(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop the directory's personal-data columns (contact name and phone): the store keeps them."""
    from energy_audit.directory.diff import PERSONAL_FIELDS

    return frame.drop(PERSONAL_FIELDS, strict=False)


def _read_summary(path: Path, result: Any) -> str:
    """One line on a :class:`~energy_audit.io.readers.ReadResult`: rows in, data, quarantine."""
    whole = int(result.quarantine["column"].is_null().sum())
    cells = result.quarantine.height - whole
    return _t(
        f"{path.name}：读取 {result.rows_in:,} 行，{result.data.height:,} 行进入数据；"
        f"隔离区：{whole:,} 整行、{cells:,} 个单元格；读取说明 {result.notes.height:,} 条",
        f"{path.name}: {result.rows_in:,} rows in, {result.data.height:,} in data; "
        f"quarantine: {whole:,} whole row(s) and {cells:,} cell(s); "
        f"{result.notes.height:,} note(s)",
    )


def _print_quarantine(quarantine: pl.DataFrame, shown: int) -> None:
    """Print the first ``shown`` quarantine entries as a compact table; count the rest."""
    from energy_audit.io.writers import header

    if quarantine.is_empty():
        return
    sheets = quarantine["source_sheet"].drop_nulls().n_unique() > 1
    table = Table(title=_t("隔离区（无法读取的内容）", "Quarantine (what could not be read)"))
    if sheets:
        table.add_column(header("source_sheet", _lang), overflow="fold")
    table.add_column(header("source_row", _lang), justify="right", no_wrap=True)
    table.add_column(_t("列", "column"), overflow="fold")
    table.add_column(_t("原始内容", "raw value"), overflow="fold", max_width=30)
    table.add_column(_t("原因", "reason"), overflow="fold")
    for r in quarantine.head(shown).iter_rows(named=True):
        raw = r["raw_value"] or ""
        raw = raw if len(raw) <= 60 else raw[:59] + "…"
        column = header(r["column"], _lang) if r["column"] else _t("（整行）", "(whole row)")
        reason = r.get("reason_en") if _lang == "en" and r.get("reason_en") else r["reason"]
        cells = [str(r["source_row"]), column, raw, reason or ""]
        _row(table, *([r["source_sheet"] or ""] if sheets else []), *cells)
    console.print(table)
    rest = quarantine.height - min(shown, quarantine.height)
    if rest:
        _say(
            _t(
                f"另有 {rest:,} 项未列出（用 --out 写出全部）",
                f"{rest:,} more not listed (--out writes them all)",
            ),
        )


@app.command(
    cls=_Command,
    help=_help(
        "把文件读成规范表，报告做过的换算和进入隔离区的内容。",
        "Read a file into the canonical table and report what was converted or quarantined.",
    ),
)
def read(
    path: Annotated[
        Path,
        typer.Argument(
            help=_help("一个 .xlsx、.csv 或 .parquet 文件。", "An .xlsx, .csv or .parquet file.")
        ),
    ],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help=_help(
                "文件内容：returns（填报数据）或 directory（名录库）。",
                "What the file holds: returns or directory.",
            ),
        ),
    ] = "returns",
    year: Annotated[
        int | None,
        typer.Option(
            "--year",
            help=_help("文件没有年度列时使用的年度。", "Year for a file without a year column."),
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help=_help(
                "把数据、隔离区和读取说明写入此文件夹（.parquet 和 quarantine.xlsx；不含联系人）。",
                "Write data, quarantine and notes into this folder (.parquet and "
                "quarantine.xlsx; without contacts).",
            ),
        ),
    ] = None,
    show: Annotated[
        int,
        typer.Option(
            "--show",
            min=0,
            help=_help("列出隔离区的前几项。", "How many quarantine entries to list."),
        ),
    ] = QUARANTINE_SHOWN,
) -> None:
    """Read a file (``read_returns`` / ``read_directory``); list the quarantine."""
    from energy_audit.io.readers import read_directory, read_returns
    from energy_audit.io.writers import write_excel

    if kind not in ("returns", "directory"):
        raise typer.BadParameter(
            _t(f"“{kind}”：请给出 returns 或 directory", f"{kind!r}: give returns or directory"),
            param_hint="--kind",
        )
    if out is not None:
        _out_folder(out)
    with _Reported(), _Progress(["read", "write"] if out is not None else ["read"]) as shown:
        shown("read", 0, 0)
        result = read_returns(path, year=year) if kind == "returns" else read_directory(path)
        if out is not None:
            shown("write", 0, 0)
            out.mkdir(parents=True, exist_ok=True)
            data = _without_personal(result.data)
            data.write_parquet(out / f"{kind}.parquet")
            result.quarantine.write_parquet(out / "quarantine.parquet")
            result.notes.write_parquet(out / "notes.parquet")
            sheets = {
                _t("隔离区", "quarantine"): result.quarantine,
                _t("读取说明", "notes"): result.notes,
            }
            if data.height + 3 <= _XLSX_MAX_ROWS:
                sheets[_t("数据", "data")] = data
            write_excel(
                sheets,
                out / "quarantine.xlsx",
                title=_t(f"读取 {path.name} 的结果", f"Reading {path.name}"),
                lang=_lang,
            )
    _say(_read_summary(path, result))
    for note in result.notes.filter(pl.col("kind") != "absent_column").iter_rows(named=True):
        what = " ".join(t for t in (note["header"] or note["column"], note["detail"]) if t)
        _say(
            f"  {term('note_kind', note['kind'], _lang)}{_t('：', ': ')}{what}",
        )
    _print_quarantine(result.quarantine, show)
    if out is not None:
        _say(
            _t(
                f"已写出 {kind}.parquet、quarantine.parquet、notes.parquet 和 quarantine.xlsx "
                f"到 {out}",
                f"wrote {kind}.parquet, quarantine.parquet, notes.parquet and quarantine.xlsx "
                f"to {out}",
            ),
        )


@app.command(
    "verify",
    cls=_Command,
    help=_help(
        """核查一个年度的填报数据：完整性、有效性、匹配性、统计异常 → 核查发现。

        写出 OUT/findings.parquet、OUT/findings.xlsx（每个类别一个工作表，按优先级排序）、
        OUT/verify.json，以及优先级最高的统计异常的证据图（OUT/evidence/*.png 和 index.csv）。
        有核查发现不算失败：有发现时退出码为 0，输入无法使用时为 1。""",
        """Verify a year's returns: coverage, validity, consistency, statistics → findings.

        Writes OUT/findings.parquet, OUT/findings.xlsx (a sheet per category, by priority),
        OUT/verify.json and the evidence charts of the top statistical findings
        (OUT/evidence/*.png with index.csv). Findings never fail the run: exit 0 with
        findings, 1 for unusable input.""",
    ),
)
def verify_command(
    directory: Annotated[
        Path,
        typer.Option(
            "--directory",
            help=_help(
                "名录库快照文件，或名录库存储文件夹。",
                "Directory snapshot file, or a directory store folder.",
            ),
        ),
    ],
    returns: Annotated[
        list[Path],
        typer.Option(
            "--returns", help=_help("该年度的填报数据文件。", "Returns file(s) of the year.")
        ),
    ],
    year: Annotated[
        int,
        typer.Option("--year", help=_help("核查的统计年度。", "The reporting year verified.")),
    ],
    out: Annotated[Path, typer.Option("--out", help=_help("输出文件夹。", "Output folder."))],
    history: Annotated[
        list[Path] | None,
        typer.Option(
            "--history",
            help=_help("往年的填报数据文件。", "Returns file(s) of earlier years."),
        ),
    ] = None,
    settings_file: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            help=_help(
                "覆盖默认阈值的 JSON 设置文件。", "JSON file of thresholds overriding the defaults."
            ),
        ),
    ] = None,
    evidence: Annotated[
        int,
        typer.Option(
            "--evidence",
            min=0,
            help=_help(
                "为优先级最高的这么多份填报绘制统计异常的证据图，写入 OUT/evidence（0：不绘制）。",
                "Draw the statistical findings of this many returns of highest priority "
                "to OUT/evidence (0: none).",
            ),
        ),
    ] = 20,
) -> None:
    """Verify a year's returns (``energy_audit.verify.run.verify``)."""
    from energy_audit.directory.history import DirectoryStore
    from energy_audit.io.readers import read_directory, read_returns
    from energy_audit.panel.evidence import write_evidence
    from energy_audit.verify.run import verify, write_verification
    from energy_audit.verify.settings import VerifySettings

    _out_folder(out)
    stages = ["read_directory", "read_returns", "read_history", "verify", "write", "evidence"]
    if not history:
        stages.remove("read_history")
    if not evidence:
        stages.remove("evidence")
    drawn = None
    if evidence:
        _warn_if_no_cjk_font()
    with _Reported(), _Progress(stages) as shown:
        settings = VerifySettings.from_json(settings_file) if settings_file else None
        shown("read_directory", 0, 1)
        source = DirectoryStore(directory) if directory.is_dir() else read_directory(directory)
        shown("read_directory", 1, 1)
        read = []
        for path in returns:
            shown("read_returns", len(read), len(returns))
            read.append(read_returns(path, year=year))
        shown("read_returns", len(read), len(returns))
        previous = []
        for path in history or []:
            shown("read_history", len(previous), len(history or []))
            previous.append(read_returns(path))
        if history:
            shown("read_history", len(previous), len(history))
        result = verify(source, read, year, history=previous, settings=settings, progress=shown)
        shown("write", 0, 0)
        write_verification(result, out, inputs=[*returns, *(history or [])], lang=_lang)
        if evidence:
            shown("evidence", 0, 0)
            drawn = write_evidence(
                result.findings, result.evidence_data(), out / "evidence", returns=evidence
            )
    c = result.coverage
    _say(f"{year}：" if _lang == "zh" else f"{year}: ", _coverage_text(c.to_dict()))
    table = Table(title=_t("核查发现（按类别和严重程度）", "Findings by category and severity"))
    for column in ("category", "severity"):
        table.add_column(_header(column))
    table.add_column(_t("数量", "findings"), justify="right")
    for category, severity, n in result.counts().iter_rows():
        _row(table, term("category", category, _lang), term("severity", severity, _lang), f"{n:,}")
    console.print(table)
    batches = result.batches()
    folded = int(batches["members"].sum())
    _say(
        _t(
            f"按批次处理：{batches.height:,} 个系统性问题（同一规则在同一文件或同一区的多数填报上"
            f"触发）各记为一条批次发现，其下 {folded:,} 条发现保留在表中，优先级降为 0",
            f"folded into batches: {batches.height:,} systemic rule finding(s) (one rule firing "
            f"on most returns of one file or district), each one batch finding; the "
            f"{folded:,} finding(s) they stand for stay in the table at priority 0",
        )
        if batches.height
        else _t(
            "按批次处理：没有系统性问题（没有规则在同一文件或同一区的多数填报上触发）",
            "folded into batches: none (no rule fires on most returns of one file or district)",
        ),
    )
    _say(
        _t(
            f"已写出 findings.parquet、findings.xlsx 和 verify.json 到 {out}",
            f"wrote findings.parquet, findings.xlsx and verify.json to {out}",
        ),
    )
    if drawn is not None:
        charts, ranks, failed = (
            drawn["file"].drop_nulls().len(),
            drawn["rank"].n_unique(),
            drawn["file"].null_count(),
        )
        _say(
            _t(
                f"已为 {ranks:,} 份填报绘制 {charts:,} 张证据图到 {out / 'evidence'}",
                f"drew {charts:,} evidence chart(s) of {ranks:,} return(s) to {out / 'evidence'}",
            )
            + (
                _t(
                    f"（{failed:,} 张无法绘制：见 index.csv）",
                    f" ({failed:,} could not be drawn: see index.csv)",
                )
                if failed
                else ""
            ),
        )


def _header(column: str) -> str:
    """Header of a canonical column in the language of this run."""
    from energy_audit.io.writers import header

    return header(column, _lang)


def _markdown_command(render: Any, out: Path | None) -> None:
    with _Reported():
        text = render()
        if out is None:
            console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            _out_file(out)
            out.write_text(text, encoding="utf-8")
    if out is not None:
        _say(_t(f"已写出 {out}", f"wrote {out}"))


_OUT_FILE_HELP = (
    "写入此文件而不打印（文件夹须已存在）。",
    "Write to this file instead of printing (its folder must exist).",
)


@app.command(
    cls=_Command,
    help=_help(
        "以 Markdown 打印规则目录（编号、类别、严重程度、设置）。",
        "Print the rule catalogue (ids, categories, severities, settings) as Markdown.",
    ),
)
def rules(
    out: Annotated[Path | None, typer.Option("--out", help=_help(*_OUT_FILE_HELP))] = None,
) -> None:
    """Print or write the rule catalogue."""
    from energy_audit.catalogue import render_rules_markdown

    _markdown_command(render_rules_markdown, out)


@app.command(
    cls=_Command,
    help=_help(
        "以 Markdown 打印数据规范（表、列、中文表头、单位）。",
        "Print the data contract (tables, columns, Chinese headers, units) as Markdown.",
    ),
)
def contract(
    out: Annotated[Path | None, typer.Option("--out", help=_help(*_OUT_FILE_HELP))] = None,
) -> None:
    """Print or write the data contract."""
    from energy_audit.contract import render_markdown

    _markdown_command(render_markdown, out)


def _print_findings_summary(findings: pl.DataFrame) -> None:

    if findings.is_empty():
        _say(_t("没有核查发现", "no findings"))
        return
    table = Table(title=_t("核查发现（按规则）", "Findings by rule"))
    table.add_column(_header("rule_id"), no_wrap=True)
    table.add_column(_header("severity"), no_wrap=True)
    table.add_column(_t("数量", "count"), justify="right", no_wrap=True)
    table.add_column(_t("示例", "example"), overflow="fold")
    message = "message_en" if _lang == "en" else "message_zh"
    summary = (
        findings.group_by("rule_id", "severity")
        .agg(pl.len().alias("n"), pl.col(message).first().alias("example"))
        .sort("rule_id")
    )
    for r in summary.iter_rows(named=True):
        _row(
            table, r["rule_id"], term("severity", r["severity"], _lang), f"{r['n']:,}", r["example"]
        )
    console.print(table)


def _print_changes_summary(changes: pl.DataFrame) -> None:
    from energy_audit.directory.diff import summarize_changes

    _say(
        _t("变更（单位数）：", "changes (institutions): ")
        + _terms("change_kind", summarize_changes(changes)),
    )


@directory_app.command(
    "check",
    cls=_Command,
    help=_help(
        "检查名录库快照：代码、重复、取值、隶属关系、合并。",
        "Check a directory snapshot: codes, duplicates, values, hierarchy, merges.",
    ),
)
def directory_check(
    path: Annotated[
        Path,
        typer.Argument(
            help=_help(
                "名录库快照（.xlsx、.csv、.parquet）。",
                "Directory snapshot (.xlsx, .csv, .parquet).",
            )
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help=_help(
                "把 findings.parquet 和 findings.xlsx 写入此文件夹。",
                "Write findings.parquet and findings.xlsx here.",
            ),
        ),
    ] = None,
) -> None:
    """Check a directory snapshot (``maintenance.check_file``)."""
    from energy_audit.directory.maintenance import check_file

    if out is not None:
        _out_folder(out)
    with _Reported():
        result = check_file(path, out, lang=_lang)
    _say(_read_summary(path, result.read))
    _print_findings_summary(result.findings)
    if out is not None:
        _say(
            _t(
                f"已写出 findings.parquet 和 findings.xlsx 到 {out}",
                f"wrote findings.parquet and findings.xlsx to {out}",
            ),
        )


@directory_app.command(
    "diff",
    cls=_Command,
    help=_help(
        "比对两个快照：新增、撤销、合并、更名、信息变更、移除。",
        "Compare two snapshots: added, dissolved, merged, renamed, changed, removed.",
    ),
)
def directory_diff(
    old: Annotated[Path, typer.Argument(help=_help("较早的快照。", "The earlier snapshot."))],
    new: Annotated[Path, typer.Argument(help=_help("较晚的快照。", "The later snapshot."))],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help=_help(
                "把 changes.parquet 和 changes.xlsx 写入此文件夹。",
                "Write changes.parquet and changes.xlsx here.",
            ),
        ),
    ] = None,
) -> None:
    """Compare two snapshots (``maintenance.diff_files``)."""
    from energy_audit.directory.maintenance import diff_files

    if out is not None:
        _out_folder(out)
    with _Reported():
        changes = diff_files(old, new, out, lang=_lang)
    _print_changes_summary(changes)
    if out is not None:
        _say(
            _t(
                f"已写出 changes.parquet 和 changes.xlsx 到 {out}",
                f"wrote changes.parquet and changes.xlsx to {out}",
            ),
        )


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            _t(f"“{text}”：请按 YYYY-MM-DD 给出日期", f"{text!r}: give a date as YYYY-MM-DD"),
            param_hint="--as-of",
        ) from None


@directory_app.command(
    "update",
    cls=_Command,
    help=_help(
        """检查快照，与存储中最新的快照比对，没有错误时存储。

        退出码 0：已存储；3：因错误类发现被拒绝（存储不变）；1：输入无法使用。""",
        """Check a snapshot, diff it against the store's latest, and store it when it has no errors.

        Exit 0 stored; 3 refused because of error findings (store unchanged); 1 unusable input.""",
    ),
)
def directory_update(
    path: Annotated[Path, typer.Argument(help=_help("新的快照文件。", "The new snapshot file."))],
    store: Annotated[
        Path,
        typer.Option("--store", help=_help("名录库存储文件夹。", "The directory store folder.")),
    ],
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            help=_help("快照日期，YYYY-MM-DD。", "Date of the snapshot, YYYY-MM-DD."),
        ),
    ],
    accept_errors: Annotated[
        bool,
        typer.Option(
            "--accept-errors",
            help=_help("有错误类发现也存储。", "Store even with error findings."),
        ),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help=_help("接受错误的理由（必填）。", "Why errors are accepted (required)."),
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help=_help(
                "核查发现和变更报告的文件夹（默认在存储中）。",
                "Folder for findings and change report (default: in store).",
            ),
        ),
    ] = None,
) -> None:
    """Run the quarterly update (``maintenance.update_store``)."""
    from energy_audit.directory.maintenance import update_store

    date = _date(as_of)
    if accept_errors and not (reason and reason.strip()):
        raise typer.BadParameter(
            _t("--accept-errors 需要 --reason", "--accept-errors needs --reason"),
            param_hint="--reason",
        )
    if out is not None:
        _out_folder(out)
    with _Reported():
        result = update_store(
            store, path, date, accept_errors=accept_errors, reason=reason, out_dir=out, lang=_lang
        )
    _print_findings_summary(result.check.findings)
    _print_changes_summary(result.changes)
    _say(
        _t(
            f"核查发现和变更报告在 {result.out_dir}",
            f"findings and change report in {result.out_dir}",
        ),
    )
    if not result.stored:
        n = result.check.counts["error"]
        errors.print(
            Text(_t("未存储：", "not stored: "), style="bold red")
            + _t(
                f"{n:,} 项错误类发现；请修改文件，或使用 --accept-errors --reason",
                f"{n:,} error finding(s); fix the file or pass --accept-errors --reason",
            ),
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_BLOCKED)
    accepted = result.snapshot is not None and result.snapshot.accepted_with_errors
    _say(
        _t(
            f"已将 {date} 的快照存入 {store}" + ("（已接受错误）" if accepted else ""),
            f"stored the snapshot of {date} in {store}"
            + (" (errors accepted)" if accepted else ""),
        ),
    )


_HISTORY_FIELDS: Final = (
    "name",
    "institution_type",
    "sector",
    "admin_level",
    "district_code",
    "parent_id",
    "status",
    "merged_into_id",
)
"""Directory fields ``directory history`` shows for each version (never contacts)."""


@directory_app.command(
    "history",
    cls=_Command,
    help=_help(
        "显示一个单位的各个版本（有效期、变更内容；不显示联系人）。",
        "Show the versions of one institution (valid from / to, what changed; no contacts).",
    ),
)
def directory_history(
    institution_id: Annotated[
        str,
        typer.Argument(
            help=_help(
                "统一社会信用代码（大小写、全角、空格和连字符都可以）。",
                "Unified social credit code (any case, full width, spaces and hyphens allowed).",
            )
        ),
    ],
    store: Annotated[
        Path,
        typer.Option("--store", help=_help("名录库存储文件夹。", "The directory store folder.")),
    ],
) -> None:
    """Show one institution's versions, one block per version."""
    from energy_audit.directory.history import DirectoryStore

    with _Reported():
        versions = DirectoryStore(store).history(institution_id)
    if versions.is_empty():
        raise _fail(
            _t(
                f"{store}：存储中没有单位 {institution_id.strip()}",
                f"{store}: no institution {institution_id.strip()} in the store",
            )
        )
    code = versions["institution_id"][0]
    _say(
        _t(
            f"{code} 的历史（{versions.height} 个版本）",
            f"History of {code} ({versions.height} version(s))",
        ),
        style="bold",
    )
    for r in versions.iter_rows(named=True):
        until = str(r["valid_to"]) if r["valid_to"] else _t("至今", "now")
        changes = _t("、", ", ").join(term("change_kind", k, _lang) for k in r["changes"])
        block = Table(
            title=_t(
                f"版本 {r['version']}：{r['valid_from']} — {until}（{changes}）",
                f"Version {r['version']}: {r['valid_from']} – {until} ({changes})",
            ),
            title_justify="left",
            show_header=False,
            box=None,
            padding=(0, 1),
        )
        block.add_column(no_wrap=False, overflow="fold", ratio=1)
        block.add_column(overflow="fold", ratio=2)
        changed = set(r["changed_fields"])
        for field in _HISTORY_FIELDS:
            value = r.get(field)
            if value is None and field == "merged_into_id":
                continue
            if field in ("sector", "institution_type", "admin_level", "status") and value:
                value = term(field, value, _lang)
            mark = " *" if field in changed else ""
            _row(block, _header(field) + mark, "" if value is None else str(value))
        console.print(block)
    _say(_t("* 与上一版本不同", "* differs from the previous version"), style="dim")
