"""Writers: the workbooks and Parquet files energy_audit publishes.

Workbooks carry Chinese headers taken from the data contract (the first alias of a column, with
its unit), two decimals for measured values, a frozen header row and an optional title row, so
a person can open them in Excel as they would a form from the office. Parquet files keep the
canonical column names and dtypes: they are what programs read back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from energy_audit import contract

_EXTRA_HEADERS: dict[str, str] = {
    "source_file": "来源文件",
    "source_sheet": "工作表",
    "source_row": "行号",
    "institutions": "公共机构数量",
    "district_name": "区名称",
    "reported_total_tce": "填报能源消费总量(吨标准煤)",
}


@functools.cache
def _header_index() -> dict[str, str]:
    index = dict(_EXTRA_HEADERS)
    # The indicators table first: its headers carry their units in Chinese.
    for name in ("indicators", *contract.TABLE_NAMES):
        for col in contract.table(name).columns:
            index.setdefault(col.name, contract.header_zh(col))
    return index


def chinese_header(column: str) -> str:
    """Return the Chinese header the library writes for a canonical column.

    Parameters
    ----------
    column : str
        Canonical column name (e.g. ``electricity_kwh``).

    Returns
    -------
    str
        The contract's first alias with its unit in Chinese (``电(千瓦时)``); the name itself if the
        contract does not know the column.
    """
    return _header_index().get(column, column)


def write_excel(
    sheets: Mapping[str, pl.DataFrame],
    path: str | Path,
    *,
    title: str | None = None,
    chinese_headers: bool = True,
    decimals: int = 2,
) -> Path:
    """Write frames as sheets of one workbook.

    Parameters
    ----------
    sheets : Mapping of str to polars.DataFrame
        Sheet name (at most 31 characters) → frame, in order.
    path : str or Path
        The ``.xlsx`` file to write; its folder is created.
    title : str, optional
        Title written in row 1 above the header (row 3), as offices write their forms.
    chinese_headers : bool, default True
        Write :func:`chinese_header` of each column instead of the canonical name.
    decimals : int, default 2
        Decimals shown for floating-point columns (the stored value keeps full precision).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "#,##0." + "0" * decimals if decimals else "#,##0"
    with _workbook(path) as wb:
        for name, frame in sheets.items():
            floats = [c for c, t in frame.schema.items() if t in (pl.Float32, pl.Float64)]
            renamed = frame
            if chinese_headers:
                mapping = {c: chinese_header(c) for c in frame.columns}
                if len(set(mapping.values())) == len(mapping):
                    renamed = frame.rename(mapping)
                    floats = [mapping[c] for c in floats]
            renamed.write_excel(
                wb,
                worksheet=name[:31],
                position=(2, 0) if title else (0, 0),
                column_formats=dict.fromkeys(floats, fmt),
                autofit=True,
                freeze_panes=(3, 0) if title else (1, 0),
                header_format={"bold": True, "text_wrap": True},
                include_header=True,
            )
            if title:
                wb.get_worksheet_by_name(name[:31]).write(
                    0, 0, title, wb.add_format({"bold": True})
                )
    return path


@contextlib.contextmanager
def _workbook(path: Path) -> Iterator[Any]:
    """Open an xlsxwriter workbook with fixed document properties, so bytes are reproducible."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    book.set_properties(
        {"created": dt.datetime(2000, 1, 1, tzinfo=dt.UTC), "author": "energy_audit"}
    )
    try:
        yield book
    finally:
        book.close()
