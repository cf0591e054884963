"""Verification settings: one object, serialisable, overridable from JSON."""

import json

import pytest

from energy_audit.errors import SettingsError
from energy_audit.verify.settings import VerifySettings


def test_round_trip_through_json(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps({"area_change_max_pct": 15, "electricity_price_yuan_per_kwh": [0.4, 1.5]})
    )
    s = VerifySettings.from_json(path)
    assert s.area_change_max_pct == 15.0
    assert s.electricity_price_yuan_per_kwh == (0.4, 1.5)
    assert s.occupants_change_max_pct == VerifySettings().occupants_change_max_pct
    assert VerifySettings.from_dict(s.to_dict()) == s


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(SettingsError, match=r"unknown setting.*area_change_pct"):
        VerifySettings.from_dict({"area_change_pct": 5})
    with pytest.raises(SettingsError, match="unit_slip_factors must be a list"):
        VerifySettings.from_dict({"unit_slip_factors": 10})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SettingsError, match=r"bad\.json: cannot read settings"):
        VerifySettings.from_json(bad)
