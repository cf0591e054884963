"""Tests of energy_audit.districts: the packaged district table and unusable user tables."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from energy_audit.districts import load_districts
from energy_audit.errors import SettingsError


def test_bad_district_codes_named_in_both_languages() -> None:
    bad = load_districts().with_columns(pl.lit("12").alias("district_code"))
    with pytest.raises(SettingsError, match=r"district_code（区划代码）应为 6 位数字") as info:
        load_districts(bad)
    assert "district_code must be 6 digits" in info.value.message_en
    for message in (info.value.message_zh, info.value.message_en):
        assert "['12'" in message


def test_repeated_and_missing_columns_and_unreadable_file(tmp_path: Path) -> None:
    table = load_districts()
    with pytest.raises(SettingsError, match=r"district_code（区划代码）重复：\['120101'\]") as info:
        load_districts(pl.concat([table, table.filter(pl.col("district_code") == "120101")]))
    assert "district_code repeated: ['120101']" in info.value.message_en
    with pytest.raises(SettingsError, match="区县表（DataFrame）：区县表缺少列 source") as info:
        load_districts(table.drop("source"))
    assert info.value.message_en == "district table: district table lacks column(s) source"
    path = tmp_path / "absent.csv"
    with pytest.raises(SettingsError, match="无法读取区县表") as info:
        load_districts(path)
    assert str(path) in info.value.message_zh and str(path) in info.value.message_en
