r"""Parquet files: every column as the text a reader cleans, bytes that are not UTF-8 flagged.

A Parquet ``string`` column may hold bytes that are not UTF-8 (the format does not check them;
a program that writes ``bytes`` as text makes such files), and a ``binary`` column may hold
anything. polars refuses the first kind for the whole file and cannot cast the second: the
reader would stop with a traceback. Here such a column is read as bytes (pyarrow, zero-copy
``string`` → ``binary``), each cell decoded on its own, and a cell that is not UTF-8 is flagged
(:data:`energy_audit.io.cells.REASON_NOT_UTF8`) with its bytes shown as escaped text
(``b"\xff"`` → ``\xff``), so it goes to quarantine and the rest of the file is read.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from energy_audit.errors import UnusableInputError
from energy_audit.io import cells


def _frame(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    # polars panics (a BaseException) on some damaged pages: that is a damaged file too.
    except (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        first = exc
    if "utf-8" in str(first).lower() or "utf8" in str(first).lower():
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
            table = table.cast(
                pa.schema(
                    [
                        f.with_type(pa.large_binary())
                        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                        else f
                        for f in table.schema
                    ]
                )
            )
            frame = pl.from_arrow(table)
            if isinstance(frame, pl.DataFrame):
                return frame
        except (OSError, ValueError, pa.ArrowException, pl.exceptions.PolarsError):
            pass
    cause = str(first).split("\n", 1)[0][:200]
    raise UnusableInputError(
        f"{path.name}：无法作为 Parquet 文件读取：文件已损坏或不是 Parquet 文件（{cause}）",
        f"{path.name}: cannot be read as Parquet: the file is damaged or not Parquet ({cause})",
    ) from first


def binary_as_text(values: pl.Series) -> tuple[pl.Series, pl.Series | None]:
    r"""Decode a ``Binary`` column as UTF-8, cell by cell.

    Parameters
    ----------
    values : polars.Series
        ``Binary``.

    Returns
    -------
    text : polars.Series
        ``String``; a cell that is not UTF-8 holds its bytes with the invalid ones escaped
        (``\xff``).
    reasons : polars.Series or None
        ``String``: :data:`energy_audit.io.cells.REASON_NOT_UTF8` where a cell is not UTF-8,
        else null; ``None`` when every cell is UTF-8.
    """
    try:
        return values.cast(pl.String), None
    except pl.exceptions.PolarsError:
        pass
    texts: list[str | None] = []
    reasons: list[str | None] = []
    for raw in values.to_list():
        if raw is None:
            texts.append(None)
            reasons.append(None)
            continue
        try:
            texts.append(raw.decode("utf-8"))
            reasons.append(None)
        except UnicodeDecodeError:
            texts.append(raw.decode("utf-8", "backslashreplace"))
            reasons.append(cells.REASON_NOT_UTF8)
    return pl.Series(texts, dtype=pl.String), pl.Series(reasons, dtype=pl.String)


def load_table(path: Path) -> tuple[pl.DataFrame, list[str | None], dict[str, pl.Series]]:
    """Read a Parquet file as text columns.

    Parameters
    ----------
    path : Path
        A Parquet file.

    Returns
    -------
    frame : polars.DataFrame
        ``String`` columns ``c0, c1, …`` in file order (numbers as polars writes them:
        ``1234.5``, ``inf``, ``NaN``; the cleaning rules quarantine what is not finite).
    headers : list of str
        The column names.
    flags : dict of str to polars.Series
        Frame column → :data:`~energy_audit.io.cells.REASON_NOT_UTF8` per row where a cell is
        not UTF-8 (only columns with such a cell).

    Raises
    ------
    UnusableInputError
        If the file is not Parquet or is damaged, or a column holds lists or structs.
    """
    frame = _frame(path)
    headers: list[str | None] = list(frame.columns)
    nested = [c for c, t in frame.schema.items() if t.is_nested()]
    if nested:
        raise UnusableInputError(
            f"{path.name}：列 {'、'.join(nested)} 存放的是列表或结构，不是单元格的值",
            f"{path.name}: column(s) {', '.join(nested)} hold lists or structs, not cell values",
        )
    columns, flags = [], {}
    for i, (name, dtype) in enumerate(frame.schema.items()):
        if dtype == pl.Binary:
            text, reasons = binary_as_text(frame[name])
            if reasons is not None:
                flags[f"c{i}"] = reasons.alias(f"c{i}")
        else:
            try:
                text = frame[name].cast(pl.String)
            except pl.exceptions.PolarsError as exc:
                raise UnusableInputError(
                    f"{path.name}：列“{name}”（{dtype}）无法读作文本",
                    f"{path.name}: column {name!r} ({dtype}) cannot be read as text",
                ) from exc
        columns.append(text.alias(f"c{i}"))
    return pl.DataFrame(columns, height=frame.height), headers, flags
