"""Files as the office receives them, with the messy cells people type.

:func:`write_city` writes a whole city; :func:`write_returns_file` one returns file.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl
import xlsxwriter

from energy_audit import contract
from energy_audit.progress import Progress, quiet
from energy_audit.synthetic.columns import (
    _DIRECTORY,
    _DISTRICT_ALIAS,
    _FIRST_CSV_UNITS,
    _RETURNS,
    _RETURNS_UNITS,
    DIRECTORY_COLUMNS,
    RETURNS_COLUMNS,
    _file_scales,
    _fullwidth_brackets,
    _header_zh,
    _labels_zh,
    _returns_headers_zh,
)
from energy_audit.synthetic.defects import (
    DEFAULT_DEFECT_RATES,
    TRUTH_SCHEMA,
    _defect_rates,
    _empty_truth,
    _truth_frame,
)
from energy_audit.synthetic.directory import _district_table, district_trends, make_directory
from energy_audit.synthetic.noise import _check_noise
from energy_audit.synthetic.parameters import _REGION_NAME, _STREAM_FILES, _rng
from energy_audit.synthetic.returns import _check_years, make_returns

__all__ = [
    "MESSY_CELL_VARIANTS",
    "WAN_UNITS",
    "XLSX_MAX_ROWS",
    "through_files",
    "write_city",
    "write_returns_file",
]

#: Rows of one Excel sheet, title and header rows included (larger frames get no xlsx file).
XLSX_MAX_ROWS: Final = 1_048_576
_XLSX_FIRST_ROW: Final = 3  # row 1 the title, row 2 the headers
_CSV_FIRST_ROW: Final = 2  # line 1 the headers
_FIXED_CREATED: Final = dt.datetime(2025, 1, 1, 0, 0, 0)

#: The ways a messy cell is written, and whether a reader can recover the number from it.
MESSY_CELL_VARIANTS: Final[Mapping[str, bool]] = MappingProxyType(
    {
        "thousands_comma": True,  # 1,234.5
        "fullwidth_comma": True,  # 1，234.5
        "fullwidth_digits": True,  # １２３４.５
        "trailing_unit": True,  # 1234.5 千瓦时
        "padded": True,  # "  1234.5 "
        "dash": False,  # — (null: the number is lost)
        "approximate": False,  # 约1200 (not a number: quarantined)
    }
)

# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

_FORMATS: Final = ("xlsx", "csv", "parquet")
_FULLWIDTH_DIGITS: Final = str.maketrans("0123456789", "０１２３４５６７８９")
_MESSY_COLUMNS: Final = tuple(
    c for c in RETURNS_COLUMNS if c not in ("institution_id", "year", "name")
)


def _plain_number(value: float) -> str:
    """Shortest positional text of a number, as a spreadsheet shows it (``352417``, ``35.2417``)."""
    return np.format_float_positional(float(value), trim="-")


def _messy_text(variant: str, value: float, unit: str) -> str:
    """How a person might type ``value`` into a cell."""
    text = _plain_number(value)
    whole, dot, fraction = text.partition(".")
    if variant == "thousands_comma":
        return f"{int(whole):,}{dot}{fraction}"
    if variant == "fullwidth_comma":
        return f"{int(whole):,}".replace(",", "，") + dot + fraction
    if variant == "fullwidth_digits":
        return text.translate(_FULLWIDTH_DIGITS)
    if variant == "trailing_unit":
        return f"{text} {unit}" if unit else text
    if variant == "padded":
        return f"  {text} "
    if variant == "dash":
        return "—"
    # approximate: two significant digits after 约
    scale = 10.0 ** (math.floor(math.log10(abs(value))) - 1) if value else 1.0
    return "约" + _plain_number(round(value / scale) * scale)


def _in_file(series: pl.Series, scale: float | None, decimals: int | None) -> pl.Series:
    """Return a column's figures as a file in another unit holds them: ÷ ``scale``, rounded.

    ``scale`` is the canonical units per file unit (None: the canonical unit, unchanged).
    """
    if scale is None:
        return series
    in_file = series / scale
    return in_file if decimals is None else in_file.round(decimals)


def _messy_cells(
    returns: pl.DataFrame,
    units: Mapping[str, str],
    excluded: npt.NDArray[np.bool_],
    rate: float,
    rng: np.random.Generator,
    source_file: str,
    first_data_row: int,
    decimals: int | None = None,
) -> tuple[dict[str, tuple[npt.NDArray[np.int64], list[str]]], pl.DataFrame]:
    """Choose cells of a returns file to write as typed text; return the texts and their truth.

    ``units`` are the file's departures from the canonical units (万千瓦时: values ÷ 10,000),
    whose figures keep ``decimals`` decimals (all when None).
    """
    columns = _MESSY_COLUMNS
    scale = _file_scales(units)
    if rate <= 0 or returns.height == 0:
        return {}, _empty_truth()
    matrix = np.column_stack(
        [returns[c].fill_null(0).to_numpy().astype(np.float64) > 0 for c in columns]
    )
    matrix &= ~excluded[:, None]
    cells = np.flatnonzero(matrix.ravel())
    if cells.size == 0:
        return {}, _empty_truth()
    n = min(cells.size, max(1, round(rate * returns.height * len(columns))))
    cells = np.sort(rng.choice(cells, size=n, replace=False))
    rows, cols = np.divmod(cells, len(columns))
    names = list(MESSY_CELL_VARIANTS)
    variants = [names[k % len(names)] for k in rng.permutation(n)]
    out: dict[str, tuple[list[int], list[str]]] = {}
    truth_rows: list[dict[str, object]] = []
    for row, col, variant in zip(rows.tolist(), cols.tolist(), variants, strict=True):
        column = columns[col]
        value = returns[column][row]
        in_file = _in_file(pl.Series([float(value)]), scale.get(column), decimals)[0]
        if variant in ("thousands_comma", "fullwidth_comma") and in_file < 1000:
            variant = "padded"
        spec = _RETURNS.column(column)
        unit = units.get(column) or (contract.unit_label_zh(spec.unit) or "" if spec.unit else "")
        text = _messy_text(variant, in_file, unit)
        recoverable = MESSY_CELL_VARIANTS[variant]
        out.setdefault(column, ([], []))
        out[column][0].append(row)
        out[column][1].append(text)
        truth_rows.append(
            {
                "institution_id": returns["institution_id"][row],
                "year": returns["year"][row],
                "defect": "messy_cell",
                "field": column,
                "true_value": float(value),
                "reported_value": float(value) if recoverable else None,
                "reported_text": text,
                "source_file": source_file,
                "source_row": row + first_data_row,
                "recoverable": recoverable,
                "detail": variant,
            }
        )
    truth = _truth_frame(
        {c: pl.Series([r[c] for r in truth_rows], dtype=TRUTH_SCHEMA[c]) for c in truth_rows[0]}
    )
    return {c: (np.asarray(r, dtype=np.int64), t) for c, (r, t) in out.items()}, truth


def _write_xlsx(
    path: Path, title: str, headers: Sequence[str], columns: Sequence[list[object]]
) -> None:
    """Write one sheet: a merged title row, a header row, then the data (fixed timestamps)."""
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    workbook.set_properties(
        {"title": title, "author": "energy_audit.synthetic", "created": _FIXED_CREATED}
    )
    sheet = workbook.add_worksheet("Sheet1")
    title_format = workbook.add_format({"bold": True, "font_size": 14, "align": "center"})
    header_format = workbook.add_format({"bold": True, "text_wrap": True, "border": 1})
    sheet.set_column(0, len(headers) - 1, 14)
    sheet.merge_range(0, 0, 0, len(headers) - 1, title, title_format)
    sheet.write_row(1, 0, list(headers), header_format)
    for r, row in enumerate(zip(*columns, strict=True)):
        sheet.write_row(r + 2, 0, row)
    workbook.close()


def _as_text(series: pl.Series) -> pl.Series:
    """Numbers as a spreadsheet saves them to CSV: ``352417``, ``35.2417``; null stays null."""
    text = series.cast(pl.String)
    if series.dtype.is_float():
        text = text.str.replace(r"\.0$", "")
    return text


def _messy_credit_code(code: str, variant: int) -> str:
    if variant == 0:
        return " ".join(code[i : i + 4] for i in range(0, len(code), 4))
    if variant == 1:
        return f"{code[:8]}-{code[8:17]}-{code[17:]}"
    if variant == 2:
        return code.lower()
    return code.translate(_FULLWIDTH_DIGITS)


def write_returns_file(
    returns: pl.DataFrame,
    path: str | Path,
    *,
    seed: int | np.random.Generator,
    year: int | None = None,
    truth: pl.DataFrame | None = None,
    messy_rate: float = DEFAULT_DEFECT_RATES["messy_cell"],
    units: Mapping[str, str] | None = None,
    encoding: str | None = None,
    decimals: int | None = None,
) -> tuple[Path, pl.DataFrame]:
    """Write one year of returns as the office receives them; return the file and its messy cells.

    The format follows the suffix of ``path``, as :func:`write_city` writes each year:

    - ``.xlsx``: a merged title row ``<year>年度天津市公共机构能源资源消费统计表``, the Chinese
      headers with units (:data:`RETURNS_HEADERS_ZH`, required columns marked ``*``), numbers as
      numbers, messy cells as text; fixed timestamps, so the same input gives the same bytes.
    - ``.csv``: Chinese headers with full-width brackets (``电（千瓦时）``), numbers as text the
      way a spreadsheet saves them (``352417``, ``35.2417``), messy cells.
    - ``.parquet``: the canonical columns as they are (no units, no messy cells).

    A share ``messy_rate`` of the numeric cells of an xlsx or CSV file (at least one while the rate
    is positive) is typed as text (:data:`MESSY_CELL_VARIANTS`: ``1,234.5``, ``１２３４.５``,
    ``500 千瓦时``, ``—``, ``约1200`` …); each is one ``messy_cell`` row of the returned truth.

    Parameters
    ----------
    returns : polars.DataFrame
        Returns of one data year with the columns :data:`RETURNS_COLUMNS` (as made by
        :func:`make_returns`), in canonical units; not changed.
    path : str or Path
        File to write, ending in ``.xlsx``, ``.csv`` or ``.parquet`` (its folder must exist).
    seed : int or numpy.random.Generator
        Random seed of the messy cells; a generator is drawn from and advanced (:func:`write_city`
        passes one generator through all its files).
    year : int, optional
        Data year of the file (xlsx title row); default the only year in ``returns``.
    truth : polars.DataFrame, optional
        :func:`make_returns`' truth table: returns of an institution and year with a truth row get
        no messy cell, so that each defect stays one truth row.
    messy_rate : float, default ``DEFAULT_DEFECT_RATES["messy_cell"]``
        Share of the numeric cells typed as text [fraction, 0 to 1]; 0 writes none.
    units : mapping of str to str, optional
        Units the headers name instead of the usual ones, column → Chinese unit
        (``{"electricity_kwh": "万千瓦时"}``: values ÷ 10,000); merged over the usual units of
        the files (water in 吨, as :data:`RETURNS_HEADERS_ZH`). xlsx and CSV only.
    encoding : str, optional
        Encoding of a CSV file (``"utf-8-sig"``, UTF-8 with BOM, by default; ``"gb18030"`` as
        Chinese Excel saves it). CSV only.
    decimals : int, optional
        Decimals kept of the figures in another unit than the canonical one (``units``, water
        in 吨 aside), as a spreadsheet rounds them: 6 keeps whole kWh, m³ of figures in 万;
        default all the float has (``35.2417``). xlsx and CSV only.

    Returns
    -------
    path : Path
        The written file.
    messy_truth : polars.DataFrame
        :data:`TRUTH_SCHEMA` rows of defect ``messy_cell``, one per messy cell: ``field``,
        ``true_value`` (canonical units), ``reported_text``, ``recoverable``, ``source_file``
        (the file name) and ``source_row`` (the row as a person counts rows: the first data row is
        3 in xlsx, 2 in CSV). Empty for parquet.

    Raises
    ------
    ValueError
        If the suffix is not a known format, the columns are not :data:`RETURNS_COLUMNS`, the
        frame holds another year than ``year`` (or, without ``year``, not exactly one),
        ``messy_rate`` is outside [0, 1], the rows do not fit an xlsx sheet
        (:data:`XLSX_MAX_ROWS`), or ``units`` or ``encoding`` is given for a format without them.
    ContractError
        If a unit is not one a header of its column may name.
    """
    path = Path(path)
    fmt = path.suffix.lower().removeprefix(".")
    if fmt not in _FORMATS:
        raise ValueError(f"{path.name}: unknown format {path.suffix!r}; known: {list(_FORMATS)}")
    if set(returns.columns) != set(RETURNS_COLUMNS):
        missing = sorted(set(RETURNS_COLUMNS) - set(returns.columns))
        extra = sorted(set(returns.columns) - set(RETURNS_COLUMNS))
        raise ValueError(
            f"returns columns differ from RETURNS_COLUMNS: missing {missing}, extra {extra}"
        )
    years = sorted(returns["year"].drop_nulls().unique().to_list())
    if year is None:
        if len(years) != 1:
            raise ValueError(f"returns hold the years {years}; pass year= for a file of one year")
        year = int(years[0])
    elif set(years) - {year}:
        raise ValueError(f"returns hold the years {years}, the file is of {year}")
    if not 0.0 <= messy_rate <= 1.0:
        raise ValueError(f"messy_rate must be a fraction from 0 to 1, got {messy_rate}")
    if fmt != "csv" and encoding is not None:
        raise ValueError(f"{path.name}: encoding applies to CSV files only")
    if decimals is not None and not 0 <= decimals <= 15:
        raise ValueError(f"decimals must be from 0 to 15, got {decimals}")
    if fmt == "xlsx" and returns.height + 2 > XLSX_MAX_ROWS:
        raise ValueError(f"{returns.height:,} rows do not fit one xlsx sheet ({XLSX_MAX_ROWS:,})")
    frame = returns.select(RETURNS_COLUMNS)
    if fmt == "parquet":
        if units or decimals is not None:
            raise ValueError(
                f"{path.name}: parquet files hold canonical units; units do not apply (nor "
                "decimals)"
            )
        frame.write_parquet(path)
        return path, _empty_truth()

    file_units = {**_RETURNS_UNITS, **(units or {})}
    scale = _file_scales(file_units)
    rng = seed if isinstance(seed, np.random.Generator) else _rng(seed, _STREAM_FILES)
    if truth is None:
        excluded = np.zeros(frame.height, dtype=np.bool_)
    else:
        has_truth = truth.select("institution_id", "year").unique().with_columns(_flag=pl.lit(True))
        excluded = (
            frame.select("institution_id", "year")
            .join(has_truth, on=["institution_id", "year"], how="left", maintain_order="left")[
                "_flag"
            ]
            .fill_null(False)
            .to_numpy()
        )
    first_row = _XLSX_FIRST_ROW if fmt == "xlsx" else _CSV_FIRST_ROW
    texts, messy = _messy_cells(
        frame, file_units, excluded, messy_rate, rng, path.name, first_row, decimals
    )
    headers = _returns_headers_zh(file_units)
    if fmt == "xlsx":
        columns = []
        for c in RETURNS_COLUMNS:
            values = _in_file(frame[c], scale.get(c), decimals).to_list()
            for row, text in zip(*texts.get(c, ((), ())), strict=True):
                values[int(row)] = text
            columns.append(values)
        _write_xlsx(
            path,
            f"{year}年度{_REGION_NAME}公共机构能源资源消费统计表",
            [h + ("*" if _RETURNS.column(c).required else "") for c, h in headers.items()],
            columns,
        )
    else:
        text_columns: dict[str, pl.Series] = {}
        for c, header in headers.items():
            text = _as_text(_in_file(frame[c], scale.get(c), decimals))
            if c in texts:
                text = text.scatter(*texts[c])
            text_columns[_fullwidth_brackets(header)] = text
        csv = pl.DataFrame(text_columns).write_csv()
        path.write_bytes(csv.encode(encoding or "utf-8-sig"))
    return path, messy


#: Units of an office's history spreadsheets: electricity, natural gas and water in 万 units
#: (:func:`through_files`), column → the unit its header names.
WAN_UNITS: Final[Mapping[str, str]] = MappingProxyType(
    {"electricity_kwh": "万千瓦时", "natural_gas_m3": "万立方米", "water_m3": "万吨"}
)


def through_files(
    returns: pl.DataFrame,
    folder: str | Path,
    units: Mapping[str, str] = WAN_UNITS,
    fmt: str = "csv",
    *,
    decimals: int = 6,
) -> pl.DataFrame:
    """Write returns year by year in other units and read them back, as office files bring them.

    Each year of ``returns`` goes to ``folder/returns_<year>.<fmt>`` through
    :func:`write_returns_file` (no messy cells), its figures in ``units`` (÷ 10,000 for 万 units)
    with ``decimals`` decimals, as a spreadsheet stores them, and is read back by
    :func:`energy_audit.io.readers.read_returns`, which converts them to the canonical units.
    So the figures come back as floats of the canonical units with the error of the round trip
    (192476.99999999997 for 192477 kWh), as history read from an office's files does: a method
    that compares them exactly with this year's figures will miss.

    Parameters
    ----------
    returns : polars.DataFrame
        Returns with the columns :data:`RETURNS_COLUMNS` in canonical units, of one or several
        years (e.g. the history of :func:`make_returns`); not changed.
    folder : str or Path
        Folder of the files (created if needed); files of the same names are overwritten.
    units : mapping of str to str, default :data:`WAN_UNITS`
        Unit each column's header names, column → Chinese unit (``万千瓦时``, ``万立方米``,
        ``万吨`` …; any unit the contract allows for the column).
    fmt : {"csv", "xlsx"}, default "csv"
        Format of the files.
    decimals : int, default 6
        Decimals kept of the figures in ``units``: 6 decimals of 万 units keep 0.01 kWh, m³;
        finer figures (a slipped 35.2417 kWh is 0.00352417 万千瓦时) lose the rest, as in the
        office's spreadsheet.

    Returns
    -------
    polars.DataFrame
        The returns as read: the columns of the contract in canonical units (the reader's types)
        plus provenance (``source_file``, ``source_sheet``, ``source_row``), years in order and
        rows in file order.

    Raises
    ------
    ValueError
        If ``fmt`` is not csv or xlsx, or a year's file is not read back whole (a row or a cell
        quarantined): the round trip would lose returns.
    ContractError
        If a unit is not one a header of its column may name.

    Examples
    --------
    >>> import tempfile
    >>> from energy_audit.synthetic import make_directory, make_returns
    >>> returns, _ = make_returns(make_directory(200, seed=1), [2023, 2024], seed=1)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     history = through_files(returns, folder)
    >>> history.height == returns.height
    True
    >>> bool((history["electricity_kwh"] - returns["electricity_kwh"]).abs().max() <= 0.005)
    True
    >>> bool((history["electricity_kwh"] == returns["electricity_kwh"]).all())  # float error
    False
    """
    from energy_audit.io.readers import read_returns

    if fmt not in ("csv", "xlsx"):
        raise ValueError(f"fmt must be 'csv' or 'xlsx', got {fmt!r}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for year in sorted(returns["year"].unique().to_list()):
        frame = returns.filter(pl.col("year") == year)
        path, _ = write_returns_file(
            frame,
            out / f"returns_{year}.{fmt}",
            seed=0,
            year=year,
            messy_rate=0.0,
            units=units,
            decimals=decimals,
        )
        read = read_returns(path)
        if read.data.height != frame.height or read.quarantine.height:
            raise ValueError(
                f"{path.name}: {frame.height} returns written, {read.data.height} read back and "
                f"{read.quarantine.height} cells or rows quarantined"
            )
        parts.append(read.data)
    if not parts:  # no year: what the reader gives for a file without rows
        return (
            contract.table("returns")
            .empty_frame()
            .with_columns(
                source_file=pl.lit(None, dtype=pl.String),
                source_sheet=pl.lit(None, dtype=pl.String),
                source_row=pl.lit(None, dtype=pl.Int64),
            )
        )
    return pl.concat(parts, how="vertical")


def write_city(
    out_dir: str | Path,
    n_institutions: int,
    years: Iterable[int],
    seed: int,
    defects: bool | Mapping[str, float] = True,
    formats: Iterable[str] = _FORMATS,
    *,
    noise: str = "light",
    districts: pl.DataFrame | None = None,
    progress: Progress | None = None,
) -> dict[str, Path | dict[int, Path]]:
    """Write a synthetic city as the office receives it, with its truth table.

    Files (``Y`` = last year):

    - ``directory_YQ4.xlsx``: title row ``天津市公共机构名录库（Y年第4季度）``, the contract's
      Chinese headers and labels (the first of each, ``schemas/directory.toml``), district as its
      name under 所在区, 是/否; a few credit codes typed with spaces, hyphens, lower case or
      full-width digits.
    - ``directory_YQ4.parquet``: the canonical directory.
    - ``returns_<year>.xlsx``: title row, Chinese headers with units (:data:`RETURNS_HEADERS_ZH`,
      required columns marked ``*``), messy cells.
    - ``returns_<year>.csv``: UTF-8 with BOM and full-width brackets in headers, messy cells;
      the first year is GB18030 with electricity in 万千瓦时 (``电（万千瓦时）``, values ÷ 10,000).
    - ``returns_<year>.parquet``: the canonical returns of the year, no messy cells.
    - ``truth.parquet`` and ``truth.csv``: :func:`make_returns`' truth plus one ``messy_cell``
      row per messy cell (``source_file``, ``source_row`` as a person counts rows, the text, and
      whether the number can be recovered).
    - ``district_trends.csv``: :func:`district_trends`.

    xlsx files are only written when the rows fit a sheet (1,048,576 rows); parquet always.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created if needed).
    n_institutions : int
        Institutions in the directory [institutions].
    years : iterable of int
        Consecutive data years.
    seed : int
        Random seed: the same arguments give byte-identical files.
    defects : bool or mapping of str to float, default True
        As in :func:`make_returns`; the ``messy_cell`` rate applies to the files.
    formats : iterable of str, default ("xlsx", "csv", "parquet")
        Which of xlsx and csv to write besides parquet.
    noise : str, default "light"
        Noise family of the returns (:data:`NOISE_FAMILIES`), as in :func:`make_returns`.
    districts : polars.DataFrame, optional
        District table (default Tianjin's).
    progress : callable, optional
        :data:`energy_audit.progress.Progress`, called with the stages ``synth_directory``
        (0 of 1, then 1 of 1), ``synth_returns`` (the same) and ``synth_files`` (files written
        of the files to write). Default: quiet.

    Returns
    -------
    dict
        Written files: ``directory_xlsx``, ``directory_parquet``, ``truth_parquet``,
        ``truth_csv``, ``district_trends_csv`` map to a Path; ``returns_xlsx``, ``returns_csv``
        and ``returns_parquet`` map year → Path (e.g. ``paths["returns_xlsx"][2024]``). Keys of
        files not written (xlsx too large, format not asked for) are absent.

    Raises
    ------
    ValueError
        If a format or the noise family is unknown (and as :func:`make_directory`,
        :func:`make_returns`).
    """
    wanted = set(formats) | {"parquet"}
    unknown = sorted(wanted - set(_FORMATS))
    if unknown:
        raise ValueError(f"unknown format(s) {unknown}; known: {list(_FORMATS)}")
    year_array = _check_years(years)
    messy_rate = _defect_rates(defects)["messy_cell"]
    _check_noise(noise)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed, _STREAM_FILES)
    report = progress or quiet

    report("synth_directory", 0, 1)
    directory = make_directory(n_institutions, seed, districts=districts)
    report("synth_directory", 1, 1)
    report("synth_returns", 0, 1)
    returns, truth = make_returns(
        directory, year_array.tolist(), seed, defects=defects, noise=noise, districts=districts
    )
    report("synth_returns", 1, 1)
    rows_of_year = dict(returns.group_by("year").len().iter_rows())
    n_files = (
        2  # directory parquet, district trends
        + ("xlsx" in wanted and directory.height + 2 <= XLSX_MAX_ROWS)
        + sum(
            1
            + ("csv" in wanted)
            + ("xlsx" in wanted and rows_of_year.get(y, 0) + 2 <= XLSX_MAX_ROWS)
            for y in year_array.tolist()
        )
        + 2  # truth parquet and csv
    )
    files_done = 0

    def file_written() -> None:
        nonlocal files_done
        files_done += 1
        report("synth_files", files_done, n_files)

    report("synth_files", 0, n_files)
    table = _district_table(districts)
    written: dict[str, Path | dict[int, Path]] = {}
    returns_paths: dict[str, dict[int, Path]] = {fmt: {} for fmt in _FORMATS}
    truth_parts = [truth]
    last = int(year_array[-1])

    # Directory.
    stem = f"directory_{last}Q4"
    written["directory_parquet"] = out / f"{stem}.parquet"
    directory.write_parquet(written["directory_parquet"])
    file_written()
    if "xlsx" in wanted and directory.height + 2 <= XLSX_MAX_ROWS:
        path = out / f"{stem}.xlsx"
        labels = {c.name: _labels_zh(c, table) for c in _DIRECTORY.columns}
        labelled = directory.with_columns(
            pl.col(c).replace_strict(mapping, return_dtype=pl.String)
            for c, mapping in labels.items()
            if mapping is not None
        )
        ids = labelled["institution_id"]
        if messy_rate > 0:
            k = min(ids.len(), max(1, round(messy_rate * ids.len())))
            rows = np.sort(rng.choice(ids.len(), size=k, replace=False))
            variants = rng.integers(0, 4, k)
            texts = [
                _messy_credit_code(ids[int(r)], int(v)) for r, v in zip(rows, variants, strict=True)
            ]
            labelled = labelled.with_columns(ids.clone().scatter(rows, texts))
            truth_parts.append(
                _truth_frame(
                    {
                        "institution_id": ids.gather(rows),
                        "defect": ["messy_cell"] * k,
                        "field": ["institution_id"] * k,
                        "true_text": ids.gather(rows),
                        "reported_text": texts,
                        "source_file": [path.name] * k,
                        "source_row": rows + _XLSX_FIRST_ROW,
                        "recoverable": [True] * k,
                        "detail": ["credit_code_typed"] * k,
                    }
                )
            )
        _write_xlsx(
            path,
            f"{_REGION_NAME}公共机构名录库（{last}年第4季度）",
            [
                _header_zh(c, alias=_DISTRICT_ALIAS if c.dtype == "district" else None)
                for c in _DIRECTORY.columns
            ],
            [labelled[c].to_list() for c in DIRECTORY_COLUMNS],
        )
        written["directory_xlsx"] = path
        file_written()

    # Returns, one set of files per year (one random stream through all files: byte-identical).
    for year in year_array.tolist():
        frame = returns.filter(pl.col("year") == year)
        path, _ = write_returns_file(frame, out / f"returns_{year}.parquet", seed=rng, year=year)
        returns_paths["parquet"][year] = path
        file_written()
        if "xlsx" in wanted and frame.height + 2 <= XLSX_MAX_ROWS:
            path, messy = write_returns_file(
                frame,
                out / f"returns_{year}.xlsx",
                seed=rng,
                year=year,
                truth=truth,
                messy_rate=messy_rate,
            )
            returns_paths["xlsx"][year] = path
            truth_parts.append(messy)
            file_written()
        if "csv" in wanted:
            first = year == int(year_array[0])
            path, messy = write_returns_file(
                frame,
                out / f"returns_{year}.csv",
                seed=rng,
                year=year,
                truth=truth,
                messy_rate=messy_rate,
                units=_FIRST_CSV_UNITS if first else None,
                encoding="gb18030" if first else None,
            )
            returns_paths["csv"][year] = path
            truth_parts.append(messy)
            file_written()

    full_truth = pl.concat(truth_parts, how="vertical").sort(
        "year", "institution_id", "defect", "field", "source_file", "source_row",
        nulls_last=True, maintain_order=True,
    )  # fmt: skip
    written.update({f"returns_{fmt}": paths for fmt, paths in returns_paths.items() if paths})
    written["truth_parquet"] = out / "truth.parquet"
    full_truth.write_parquet(written["truth_parquet"])
    file_written()
    written["truth_csv"] = out / "truth.csv"
    full_truth.write_csv(written["truth_csv"])
    file_written()
    written["district_trends_csv"] = out / "district_trends.csv"
    district_trends(table).write_csv(written["district_trends_csv"])
    file_written()
    return written
