"""The data contract in schemas/: loads, builds pandera models, documentation in sync."""

from pathlib import Path

import polars as pl
import pytest

from energy_audit import contract
from energy_audit.errors import ContractError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "data-contract.md"


def test_every_table_loads():
    for name in contract.TABLE_NAMES:
        spec = contract.table(name)
        assert spec.columns, name
        assert set(spec.key) <= set(spec.names), name


def test_returns_contract_matches_the_brief():
    spec = contract.table("returns")
    required = {c.name for c in spec.columns if c.required}
    assert required == {
        "institution_id",
        "year",
        "building_area_m2",
        "occupants",
        "electricity_kwh",
        "water_m3",
    }
    assert spec.column("heat_gj").unit == "GJ"
    assert "热力" in spec.column("heat_gj").aliases
    assert spec.column("natural_gas_m3").absent_default == 0


def test_evaluation_has_four_columns_per_indicator():
    names = contract.table("evaluation").names
    for ind in (
        "energy_per_capita_kgce",
        "energy_per_m2_kgce",
        "water_per_capita_m3",
        "co2_per_m2_kg",
    ):
        for suffix in ("baseline", "change_pct", "target_pct", "completion"):
            assert f"{ind}_{suffix}" in names


def test_unknown_table_is_an_error():
    with pytest.raises(ContractError, match="没有名为 'nope' 的数据契约表") as info:
        contract.table("nope")
    assert "no contract table 'nope'" in info.value.message_en


def test_names_zh_adds_the_chinese_header():
    assert (
        contract.names_zh(["occupants", "year", "nope"])
        == "occupants（用能人数）、year（统计年度）、nope"
    )


def test_broken_contract_file_named_in_both_languages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "returns.toml"
    path.write_text('[[columns]]\nname = "kwh"\ndtype = "decimal"\n', encoding="utf-8")
    monkeypatch.setattr(contract, "schema_dir", lambda: tmp_path)
    with pytest.raises(ContractError, match="的 dtype 'decimal' 未知") as info:
        contract.table.__wrapped__("returns")  # the uncached function: the packaged table is cached
    for message in (info.value.message_zh, info.value.message_en):
        assert str(path) in message and "'kwh'" in message and "'decimal'" in message
    assert info.value.message_en.endswith("column 'kwh' has unknown dtype 'decimal'")


def test_units_registry_normalises_labels():
    reg = contract.units()
    assert reg.get("万千瓦时").factor == 1e4
    assert reg.get("ＫＷＨ").dimension == "electricity"
    assert reg.get("㎡").dimension == "area"
    assert reg.get("m³").dimension == "volume"
    assert reg.get("千卡") is None


def test_pandera_model_accepts_good_and_reports_bad_rows():
    import pandera.errors

    spec = contract.table("returns")
    schema = contract.pandera_schema("returns")
    row = dict.fromkeys(spec.names)
    row |= {
        "institution_id": "11100000000013338W",
        "year": 2023,
        "building_area_m2": 1.0,
        "occupants": 3,
        "electricity_kwh": 10.0,
        "water_m3": 1.0,
    }
    good = pl.DataFrame([row], schema=spec.polars_schema)
    schema.validate(good)
    bad = good.with_columns(
        pl.lit(-1.0).alias("electricity_kwh"), pl.lit(0).cast(pl.Int64).alias("occupants")
    )
    with pytest.raises(pandera.errors.SchemaErrors) as info:
        schema.validate(bad, lazy=True)
    failed = set(info.value.failure_cases["column"].to_list())
    assert {"electricity_kwh", "occupants"} <= failed


def test_directory_model_checks_enumerations_and_districts():
    import pandera.errors

    spec = contract.table("directory")
    row = {c.name: None for c in spec.columns}
    row |= {
        "institution_id": "11100000000013338W",
        "name": "甲",
        "district_code": "120101",
        "institution_type": "agency",
        "sector": "商业企业",
        "admin_level": "municipal",
    }
    frame = pl.DataFrame([row], schema=spec.polars_schema)
    with pytest.raises(pandera.errors.SchemaErrors) as info:
        contract.pandera_schema("directory").validate(frame, lazy=True)
    assert set(info.value.failure_cases["column"].to_list()) == {"sector"}
    ok = frame.with_columns(
        pl.lit("agency").alias("sector"), pl.lit("120225").alias("district_code")
    )
    with pytest.raises(pandera.errors.SchemaErrors, match="district_code"):
        contract.pandera_schema("directory").validate(ok, lazy=True)


def test_docs_are_generated_from_schemas():
    expected = contract.render_markdown()
    assert DOCS.read_text(encoding="utf-8") == expected, (
        "docs/data-contract.md is stale: run `energy-audit contract --out docs/data-contract.md`"
    )


@pytest.mark.parametrize(
    ("unit", "label"),
    [
        ("kWh", "千瓦时"), ("m3", "立方米"), ("l", "升"), ("GJ", "百万千焦"), ("tce", "吨标准煤"),
        ("m2", "平方米"), ("t", "吨"), ("kg", "千克"), ("人", "人"), ("辆", "辆"), ("元", "元"),
    ],
)  # fmt: skip
def test_unit_label_zh(unit, label):
    assert contract.unit_label_zh(unit) == label


def test_unit_label_zh_unknown_unit():
    assert contract.unit_label_zh("furlong") is None


def test_header_zh_writes_the_unit_in_chinese():
    returns = contract.table("returns")
    assert contract.header_zh(returns.column("electricity_kwh")) == "电(千瓦时)"
    assert contract.header_zh(returns.column("water_m3"), unit="吨") == "水(吨)"
    assert contract.header_zh(returns.column("name")) == "单位名称"
    per_capita = contract.table("indicators").column("energy_per_capita_kgce")
    assert contract.header_zh(per_capita) == "人均综合能耗(千克标准煤/人)"
