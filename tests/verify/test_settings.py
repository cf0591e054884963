"""Verification settings: one object, serialisable, overridable from JSON, strictly typed."""

import json

import pytest

from energy_audit.errors import SettingsError
from energy_audit.verify.settings import StatisticalSettings, VerifySettings


def test_round_trip_through_json(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps({"area_change_max_pct": 15, "electricity_price_yuan_per_kwh": [0.4, 1.5]})
    )
    s = VerifySettings.from_json(path)
    assert s.area_change_max_pct == 15.0
    assert isinstance(s.area_change_max_pct, float)
    assert s.electricity_price_yuan_per_kwh == (0.4, 1.5)
    assert s.occupants_change_max_pct == VerifySettings().occupants_change_max_pct
    assert VerifySettings.from_dict(s.to_dict()) == s


def test_every_default_round_trips():
    s = VerifySettings(statistical=StatisticalSettings(model_max_fit_rows=None, peer=False))
    assert VerifySettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(SettingsError, match=r"未知的设置项 area_change_pct") as info:
        VerifySettings.from_dict({"area_change_pct": 5})
    assert "unknown setting(s) area_change_pct" in info.value.message("en")
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "area_change_max_pct": 5,\n  oops\n}')
    with pytest.raises(SettingsError, match=r"bad\.json：第 3 行第 3 列不是有效的 JSON") as info:
        VerifySettings.from_json(bad)
    assert "bad.json, line 3, column 3: not valid JSON" in info.value.message("en")
    with pytest.raises(SettingsError, match=r"missing\.json：无法读取设置文件：文件不存在") as info:
        VerifySettings.from_json(tmp_path / "missing.json")
    assert "missing.json: cannot read settings: no such file" in info.value.message("en")
    with pytest.raises(SettingsError, match=r"无法读取设置文件：这是一个文件夹"):
        VerifySettings.from_json(tmp_path)
    latin = tmp_path / "gbk.json"
    latin.write_bytes('{"region_code": "天津"}'.encode("gb18030"))
    with pytest.raises(SettingsError, match=r"不是 UTF-8 文本"):
        VerifySettings.from_json(latin)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(SettingsError, match=r"list\.json：设置须为 JSON 对象"):
        VerifySettings.from_json(listed)


@pytest.mark.parametrize(
    ("values", "zh", "en"),
    [
        (
            {"area_change_max_pct": "ten"},
            '设置项 area_change_max_pct 的值 "ten" 类型不对，应为数字',
            'setting area_change_max_pct is "ten", expected a number',
        ),
        (
            {"area_change_max_pct": True},
            "area_change_max_pct 的值 true 类型不对，应为数字",
            "area_change_max_pct is true, expected a number",
        ),
        (
            {"unit_slip_factors": 10},
            "unit_slip_factors 的值 10 类型不对，应为数字的列表",
            "unit_slip_factors is 10, expected a list of numbers",
        ),
        (
            {"unit_slip_factors": [10, "x"]},
            'unit_slip_factors 的值 [10, "x"] 类型不对',
            "expected a list of numbers",
        ),
        (
            {"electricity_price_yuan_per_kwh": [0.5]},
            "electricity_price_yuan_per_kwh 的值 [0.5] 类型不对，应为含 2 个数字的列表",
            "expected a list of 2 numbers",
        ),
        (
            {"region_code": 120000},
            "region_code 的值 120000 类型不对，应为文本",
            "region_code is 120000, expected text",
        ),
        (
            {"coefficient_table": 3},
            "应为文本或null",
            "coefficient_table is 3, expected text or null",
        ),
        (
            {"statistical": {"peer": "yes"}},
            'statistical：设置项 peer 的值 "yes" 类型不对，应为true 或 false',
            'statistical: setting peer is "yes", expected true or false',
        ),
        (
            {"statistical": {"peer_min_group_size": 10.5}},
            "peer_min_group_size 的值 10.5 类型不对，应为整数",
            "expected a whole number",
        ),
        (
            {"statistical": {"digit_groups": "district_code"}},
            "digit_groups",
            "expected a list of texts",
        ),
        (
            {"statistical": [1]},
            "statistical：设置须为 JSON 对象",
            "statistical: settings must be an object",
        ),
    ],
)
def test_wrong_types_name_field_value_and_type(tmp_path, values, zh, en):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(values, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        VerifySettings.from_json(path)
    assert zh in str(info.value)
    assert en in info.value.message("en")
    assert str(path) in str(info.value)


def test_whole_numbers_are_taken_for_floats_and_lists_for_tuples():
    s = VerifySettings.from_dict(
        {"total_tolerance_tce": 1, "vehicle_fuel_columns": ["gasoline_l"], "statistical": {}}
    )
    assert s.total_tolerance_tce == 1.0 and isinstance(s.total_tolerance_tce, float)
    assert s.vehicle_fuel_columns == ("gasoline_l",)
    assert s.statistical == StatisticalSettings()


def test_alternative_coefficients_moved_and_old_settings_files_still_load(tmp_path):
    """``reconciliation_coefficients`` moved from ``statistical`` to the top level (CON-003 and
    STA-013 share it): a saved value in the old place is obeyed in the new one."""
    assert "reconciliation_coefficients" not in VerifySettings().to_dict()["statistical"]
    assert VerifySettings().reconciliation_coefficients == (("natural_gas_m3", 1.2143),)
    saved = tmp_path / "verify_settings.json"  # as every run before the move recorded it
    old = {"reconciliation_coefficients": [["natural_gas_m3", 1.2143]], "peer_k": 3.0}
    saved.write_text(json.dumps({"statistical": old}), encoding="utf-8")
    assert VerifySettings.from_json(saved) == VerifySettings(
        statistical=StatisticalSettings(peer_k=3.0)
    )
    other = {"statistical": {"reconciliation_coefficients": [["natural_gas_m3", 1.2]]}}
    moved = VerifySettings.from_dict(other)
    assert moved.reconciliation_coefficients == (("natural_gas_m3", 1.2),)
    assert VerifySettings.from_dict(moved.to_dict()) == moved
    # in both places alike: fine; differently: which one was meant is unknown
    both = {**other, "reconciliation_coefficients": [["natural_gas_m3", 1.2]]}
    assert VerifySettings.from_dict(both) == moved
    with pytest.raises(SettingsError, match=r"statistical\.reconciliation_coefficients（旧位置）"):
        VerifySettings.from_dict({**other, "reconciliation_coefficients": []})
    # the statistical settings alone cannot obey it: only the default is accepted there
    assert StatisticalSettings.from_dict(old) == StatisticalSettings(peer_k=3.0)
    with pytest.raises(SettingsError, match="已移至顶层 reconciliation_coefficients") as info:
        StatisticalSettings.from_dict(other["statistical"])
    assert "moved to the top-level reconciliation_coefficients" in info.value.message("en")
    with pytest.raises(SettingsError, match="reconciliation_coefficients 的值 3 类型不对"):
        VerifySettings.from_dict({"statistical": {"reconciliation_coefficients": 3}})
