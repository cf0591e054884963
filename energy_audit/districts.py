"""The districts of the region (GB/T 2260), kept as data so another city can use the library.

The packaged table ``energy_audit/data/districts.csv`` lists Tianjin's 16 districts
(domain.md §5). A user with another region passes their own table with the same columns:
``region_code, district_code, name_zh, name_en, source``.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import polars as pl

from energy_audit.errors import SettingsError

DISTRICT_COLUMNS: tuple[str, ...] = ("region_code", "district_code", "name_zh", "name_en", "source")


@functools.cache
def _packaged() -> pl.DataFrame:
    path = resources.files("energy_audit") / "data" / "districts.csv"
    return _check(
        pl.read_csv(str(path), schema_overrides=dict.fromkeys(DISTRICT_COLUMNS, pl.String)),
        str(path),
    )


def _check(frame: pl.DataFrame, where: str, where_zh: str | None = None) -> pl.DataFrame:
    """Validate a district table; ``where`` (and ``where_zh``, default ``where``) name it."""
    zh = where if where_zh is None else where_zh
    missing = [c for c in DISTRICT_COLUMNS if c not in frame.columns]
    if missing:
        raise SettingsError(
            f"{zh}：区县表缺少列 {'、'.join(missing)}",
            f"{where}: district table lacks column(s) {', '.join(missing)}",
        )
    frame = frame.select(pl.col(c).cast(pl.String) for c in DISTRICT_COLUMNS)
    bad = frame.filter(~pl.col("district_code").str.contains(r"^\d{6}$"))
    if bad.height:
        raise SettingsError(
            f"{zh}：district_code（区划代码）应为 6 位数字（GB/T 2260），"
            f"实际为 {bad['district_code'].to_list()[:5]}",
            f"{where}: district_code must be 6 digits (GB/T 2260); "
            f"got {bad['district_code'].to_list()[:5]}",
        )
    dup = frame.filter(pl.col("district_code").is_duplicated())
    if dup.height:
        repeated = sorted(set(dup["district_code"]))
        raise SettingsError(
            f"{zh}：district_code（区划代码）重复：{repeated}",
            f"{where}: district_code repeated: {repeated}",
        )
    return frame


def load_districts(source: str | Path | pl.DataFrame | None = None) -> pl.DataFrame:
    """Return the district table.

    Parameters
    ----------
    source : str, Path or polars.DataFrame, optional
        A CSV file or a frame with columns ``region_code, district_code, name_zh, name_en,
        source``. Default: the packaged Tianjin table.

    Returns
    -------
    polars.DataFrame
        One row per district, codes as 6-character strings.

    Raises
    ------
    SettingsError
        If columns are missing, a code is not 6 digits or a code repeats.
    """
    if source is None:
        return _packaged()
    if isinstance(source, pl.DataFrame):
        return _check(source, "district table", "区县表（DataFrame）")
    path = Path(source)
    try:
        frame = pl.read_csv(path, infer_schema_length=0)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise SettingsError(
            f"{path}：无法读取区县表：{exc}", f"{path}: cannot read the district table: {exc}"
        ) from exc
    return _check(frame, str(path))


def district_lookup(districts: pl.DataFrame | None = None) -> dict[str, str]:
    """Map every way of writing a district (code, Chinese name, short name) to its code.

    Parameters
    ----------
    districts : polars.DataFrame, optional
        District table (default: the packaged one).

    Returns
    -------
    dict of str to str
        Keys: the 6-digit code, the Chinese name (``和平区``), the name without its suffix
        ``区``/``县`` where at least two characters remain (``和平``), and the English name in
        lower case. Values: the district code.
    """
    table = load_districts() if districts is None else districts
    out: dict[str, str] = {}
    for code, zh, en in table.select("district_code", "name_zh", "name_en").iter_rows():
        out[code] = code
        if zh:
            out[zh] = code
            short = zh.rstrip("区县")
            if len(short) >= 2:
                out.setdefault(short, code)
        if en:
            out[en.lower()] = code
    return out
