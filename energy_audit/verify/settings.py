"""Settings of a verification run: every threshold of every rule, in one frozen object.

Defaults follow review practice (domain.md §6): a change of area or occupants over 10 % needs an
explanation; electricity in Tianjin costs about 0.5-1.2 元/kWh. Bands for gas and water prices
are sensible defaults for Tianjin public institutions, not published values [unverified]: the
office should confirm them and can override any field.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from energy_audit.errors import SettingsError


@dataclass(frozen=True)
class StatisticalSettings:
    """Thresholds and switches of the statistical stage (:mod:`energy_audit.verify.statistical`).

    Every score is calibrated on the year's own data (:mod:`energy_audit.outliers.calibration`),
    so these are settings of the method, not constants standing in for evidence.

    Attributes
    ----------
    enabled : bool
        Run the statistical stage at all.
    peer, density, model, yoy, slips, size, intensity, reconciliation, copies, siblings, \
round_numbers, digits : bool
        Switch of each method: peer scores of intensities (STA-001…003), occupancy density
        against peers and its change on last year (STA-012), expected-consumption model
        (STA-004), year-over-year change of the items (STA-006), unit slips (STA-005), change
        of floor area and occupants (STA-011), change of the intensities (STA-006), the
        reported total against the items (STA-013), copied figures (STA-007), identical to a
        sibling (STA-008), round numbers (STA-009), digit test of the batches of a district or
        parent body (STA-010).
    peer_k : float
        Robust-z half-width of the peer range shown as expected range [robust σ] (Iglewicz &
        Hoaglin 1993: 3.5). Not a cut-off: which returns the panel sees is decided by the
        calibrated evidence.
    peer_min_group_size : int
        Fewest values of a peer group for its own median and MAD [returns].
    model_targets : tuple of str
        Columns the expected-consumption model is fitted for, one fit each.
    model_categorical : tuple of str
        Directory columns entered as categorical predictors.
    model_level : float
        Coverage of the prediction interval shown as expected range; a suggested unit-slip
        correction must fall inside it where the model scored the figure.
    model_max_fit_rows : int or None
        Coefficients of a model fit are estimated on a subsample of about this many returns
        when a year has more (rare levels keep their rows; residuals, scale and intervals
        use all returns; :func:`energy_audit.outliers.regression.expected_consumption`).
        ``None``: all returns.
    yoy_tolerance : float
        Widest unit-slip window, relative to |ln factor| (outliers.yoy): 0.15.
    slip_noise_k : float
        Half-width of a unit-slip window in measured spreads of the item's change on last
        year (1.4826 · MAD of the log-ratios of the year), at most ``yoy_tolerance`` · |ln f|
        and at least ``slip_min_half_width``: where ordinary changes are ±25 %, a ratio of
        14 to last year is not "close to 10"; where they are ±3 %, it is not either.
    slip_min_half_width : float
        Narrowest unit-slip window [ln units]: a slip typed from a rounded figure (12.3 万)
        carries a few per cent of noise.
    yoy_band_pct : float
        Range shown around last year's value in year-over-year findings [%] (review practice:
        a change over 30 % is likely an error).
    tail_share : float
        Share of each statistic's values above the threshold of its fitted Pareto tail
        (:func:`energy_audit.outliers.calibration.tail_p`).
    change_two_back : bool
        Score a change on last year (STA-006, STA-011, STA-012) by the smaller of the change
        on the previous return and the change on the return before it (each less the year's
        median change), calibrated apart for returns with and without one two back: a figure
        back at its level of two years ago says last year's return was wrong, not this one.
    change_follow : bool
        Score a change of floor area or occupants (STA-011) by the smallest of the change and
        its difference from the change of the total energy and of the other of the two, and
        a change of an item (STA-006) by the smallest of the change and its difference from
        the change of floor area, of occupants and of the item's own cost (electricity, gas,
        water): a building change the premises and their energy follow (a new wing, a closed
        site), or a change of use the bills follow, is explained; one nothing follows is
        not. Changes with a cost to follow them are calibrated apart from those without.
    materiality_floor : float
        Smallest weight of an energy item in a return's evidence, as a share of the return's
        expected energy: an item's evidence is weighted by its share, so that 3 kWh of
        electricity in a gas-heated building does not outrank a building that uses twice
        its peers' energy. Expected share: the item's larger of this year's and last year's
        figure, in tce, over the return's sum of those.
    water_weight : float
        Weight of water against the energy items (together 1) in a method's evidence.
    report_p : float
        Returns whose combined p-value is at most this get findings (the queue); the others
        are scored (``score_returns``) but not listed.
    finding_p : float
        In a listed return, every piece of evidence with a p-value at most this becomes a
        finding (and always the strongest piece).
    (``reconciliation_coefficients``, read by STA-013 and CON-003, moved to
    :class:`VerifySettings`; a saved ``statistical.reconciliation_coefficients`` still loads
    there, :data:`MOVED_SETTINGS`.)
    copy_rtol : float
        Relative tolerance of a copied figure (outliers.copies.copied_figures).
    copy_min_nonzero : int
        Fewest non-zero quantities a return needs to be called a copy.
    round_prior_weight : float
        Prior weight κ of the chance rate in the round-number history and peer rates.
    digit_groups : tuple of str
        Directory columns whose batches (per year) the first-two digits test checks.
    benford_min_count : int
        Fewest figures of a batch for a verdict [figures] (Nigrini: about 1,000 or more;
        :data:`energy_audit.outliers.digits.BENFORD_MIN_COUNT`).
    benford_q : float
        STA-010 fires for a batch whose MAD is in Nigrini's "nonconformity" class *and* whose
        chi-square p-value has a Benjamini-Hochberg q-value (over the batches tested) at most
        this. The MAD alone is "nonconformity" by chance for batches of a few thousand
        figures, the chi-square alone rejects trivial deviations of large batches: both
        together flag batches that are far from Benford's law and not by chance.
    null_check_tolerance : float
        q-values (Benjamini-Hochberg over the year's returns) are given only when the
        combined p-values above 0.2 look uniform: the largest gap between their empirical
        distribution and the uniform one (Kolmogorov distance) is at most this. Otherwise the
        p-values are not backed by an empirical null and the queue shows ranks only.
    """

    enabled: bool = True
    peer: bool = True
    density: bool = True
    model: bool = True
    yoy: bool = True
    slips: bool = True
    size: bool = True
    intensity: bool = True
    reconciliation: bool = True
    copies: bool = True
    siblings: bool = True
    round_numbers: bool = True
    digits: bool = True
    peer_k: float = 3.5
    peer_min_group_size: int = 10
    model_targets: tuple[str, ...] = (
        "electricity_kwh",
        "natural_gas_m3",
        "heat_gj",
        "water_m3",
        "total_energy_tce",
    )
    model_categorical: tuple[str, ...] = (
        "sector",
        "subsector",
        "admin_level",
        "district_code",
        "heat_billing",
    )
    model_level: float = 0.99
    model_max_fit_rows: int | None = 200_000
    yoy_tolerance: float = 0.15
    slip_noise_k: float = 4.0
    slip_min_half_width: float = 0.03
    yoy_band_pct: float = 30.0
    tail_share: float = 0.05
    change_two_back: bool = True
    change_follow: bool = True
    materiality_floor: float = 0.01
    water_weight: float = 0.2
    report_p: float = 0.05
    finding_p: float = 0.01
    copy_rtol: float = 1e-6
    copy_min_nonzero: int = 2
    round_prior_weight: float = 1.0
    digit_groups: tuple[str, ...] = ("district_code", "parent_id")
    benford_min_count: int = 1000
    benford_q: float = 0.01
    null_check_tolerance: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-serialisable dict."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "settings") -> StatisticalSettings:
        """Build settings from a dict such as :meth:`to_dict` returns; absent keys keep defaults.

        A setting moved to :class:`VerifySettings` (:data:`MOVED_SETTINGS`) is accepted when
        it holds its default (the value saved runs recorded) and refused otherwise, since it
        would not be obeyed here; :meth:`VerifySettings.from_dict` moves it instead.

        Raises
        ------
        SettingsError
            If a key is unknown or a value is not of the field's type (the message names the
            setting, the value and the type expected), or a moved setting holds another value
            than its default.
        """
        if isinstance(values, dict):
            values = _without_moved(values, where)
        return _from_dict(cls, values, where)


_TYPE_NAMES: dict[type, tuple[str, str, str]] = {
    bool: ("true 或 false", "true or false", "true or false values"),
    int: ("整数", "a whole number", "whole numbers"),
    float: ("数字", "a number", "numbers"),
    str: ("文本", "text", "texts"),
    type(None): ("null", "null", "nulls"),
}
"""Chinese, English and English plural name of each value type a setting may have."""


def _expected(hint: Any) -> tuple[str, str]:
    """Describe a field's type hint in Chinese and English (for messages)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        parts = [_expected(a) for a in args]
        return "或".join(p[0] for p in parts), " or ".join(p[1] for p in parts)
    if origin is tuple and args[0] not in _TYPE_NAMES:  # a list of pairs
        inner_zh, inner_en = _expected(args[0])
        return f"列表（每项为{inner_zh}）", f"a list of items, each {inner_en}"
    if origin is tuple and len(set(a for a in args if a is not Ellipsis)) > 1:  # (str, float)
        parts = [_expected(a) for a in args]
        return (
            "列表［" + "，".join(p[0] for p in parts) + "］",
            "a list [" + ", ".join(p[1] for p in parts) + "]",
        )
    if origin is tuple:
        zh, _, plural = _TYPE_NAMES[args[0]]
        if len(args) == 2 and args[1] is Ellipsis:
            return f"{zh}的列表", f"a list of {plural}"
        return f"含 {len(args)} 个{zh}的列表", f"a list of {len(args)} {plural}"
    if dataclasses.is_dataclass(hint):
        return "JSON 对象", "a JSON object"
    zh, en, _ = _TYPE_NAMES[hint]
    return zh, en


def _shown(value: Any) -> str:
    """Show a value as JSON text where it can be (as the user wrote it), else as its repr."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _convert(value: Any, hint: Any) -> Any:
    """Return ``value`` as the type ``hint`` names; raise TypeError if it is not of that type.

    JSON has no tuples and no float/int distinction: a list becomes a tuple, an integer given
    for a float becomes a float. ``bool`` is never taken for a number, nor a number for a bool.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        for arg in args:
            try:
                return _convert(value, arg)
            except TypeError:
                continue
        raise TypeError(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise TypeError(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        if len(value) != len(args):
            raise TypeError(hint)
        return tuple(_convert(v, a) for v, a in zip(value, args, strict=True))
    if hint is type(None):
        if value is not None:
            raise TypeError(hint)
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError(hint)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(hint)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(hint)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(hint)
        return value
    raise TypeError(hint)  # pragma: no cover - every field type is handled above


def _from_dict(cls: Any, values: dict[str, Any], where: str) -> Any:
    """Build the frozen settings ``cls`` from ``values``, checking every key and value type."""
    if not isinstance(values, dict):
        raise SettingsError(
            f"{where}：设置须为 JSON 对象，实为 {values!r}",
            f"{where}: settings must be an object, got {values!r}",
        )
    fields = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - fields)
    if unknown:
        known = ", ".join(sorted(fields))
        raise SettingsError(
            f"{where}：未知的设置项 {', '.join(unknown)}（已有：{known}）",
            f"{where}: unknown setting(s) {', '.join(unknown)} (known: {known})",
        )
    converted: dict[str, Any] = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            converted[name] = hint.from_dict(value, f"{where}: {name}")
            continue
        converted[name] = _typed(value, hint, name, where)
    return cls(**converted)


@dataclass(frozen=True)
class RetiredSetting:
    """A setting :class:`VerifySettings` no longer has, and what a saved file may still hold."""

    hint: Any
    """Its type, as it was (a wrong type still gets the usual message)."""
    saved: Any
    """The value every run recorded (the old default): accepted and ignored."""
    replaced_zh: str
    replaced_en: str
    """What took its place (for the message refusing another value)."""


RETIRED_SETTINGS: Final[Mapping[str, RetiredSetting]] = {
    "unit_slip_factors": RetiredSetting(
        tuple[float, ...],
        (10.0, 1000.0, 10000.0),
        "单价规则（CON-007…009）的单位误填倍数现统一取自 energy_audit.slips"
        "（10 的 ±1…±4 次方，升计量的燃油另加密度），不再单独设置",
        "the unit-slip factors of the price rules (CON-007…009) now come from the one table "
        "energy_audit.slips (10^±1…±4, fuel densities for litre columns) and are no longer "
        "a setting",
    ),
}
"""Settings retired from :class:`VerifySettings`, by name (:meth:`VerifySettings.from_dict`)."""


def _without_retired(values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` without the retired settings that hold their saved value; refuse the others."""
    out = dict(values)
    for name in sorted(set(values) & set(RETIRED_SETTINGS)):
        retired = RETIRED_SETTINGS[name]
        converted = _typed(out.pop(name), retired.hint, name, where)
        if converted != retired.saved:
            raise SettingsError(
                f"{where}：设置项 {name} 已取消：{retired.replaced_zh}；请从设置中删去此项"
                f"（仅接受旧的默认值 {_shown(list(retired.saved))}）",
                f"{where}: setting {name} was retired: {retired.replaced_en}; delete it from the "
                f"settings (only its old default {_shown(list(retired.saved))} is accepted)",
            )
    return out


DEFAULT_RECONCILIATION_COEFFICIENTS: Final[tuple[tuple[str, float], ...]] = (
    ("natural_gas_m3", 1.2143),
)
"""Default of ``VerifySettings.reconciliation_coefficients``: natural gas at 1.2143 kgce/m³
(some provincial standards; GB/T 2589-2020 has 1.33; domain.md §2)."""


@dataclass(frozen=True)
class MovedSetting:
    """A setting of :class:`StatisticalSettings` that now lives in :class:`VerifySettings`."""

    hint: Any
    """Its type (the same in both places)."""
    default: Any
    """Its default: what every saved run recorded in the old place."""
    to: str
    """Its name in :class:`VerifySettings`."""
    why_zh: str
    why_en: str
    """Why it moved (for the message refusing a value the old place cannot obey)."""


MOVED_SETTINGS: Final[Mapping[str, MovedSetting]] = {
    "reconciliation_coefficients": MovedSetting(
        tuple[tuple[str, float], ...],
        DEFAULT_RECONCILIATION_COEFFICIENTS,
        "reconciliation_coefficients",
        "认可的替代折标系数现由 CON-003 与 STA-013 共用（energy_audit.reconciliation）",
        "the accepted alternative coefficients are now shared by CON-003 and STA-013 "
        "(energy_audit.reconciliation)",
    ),
}
"""Settings moved from ``statistical`` to the top level of :class:`VerifySettings`, by old name
(:meth:`VerifySettings.from_dict` carries a saved value over)."""


def _moved_value(values: dict[str, Any], name: str, where: str) -> Any:
    """Return the moved setting ``name`` of ``values``, typed (SettingsError if it is not)."""
    return _typed(values[name], MOVED_SETTINGS[name].hint, name, where)


def _typed(value: Any, hint: Any, name: str, where: str) -> Any:
    """Return ``value`` converted to ``hint``; SettingsError naming ``name`` if it is not one."""
    try:
        return _convert(value, hint)
    except TypeError:
        zh, en = _expected(hint)
        raise SettingsError(
            f"{where}：设置项 {name} 的值 {_shown(value)} 类型不对，应为{zh}",
            f"{where}: setting {name} is {_shown(value)}, expected {en}",
        ) from None


def _without_moved(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Statistical ``values`` without the moved settings that hold their default."""
    out = dict(values)
    for name in sorted(set(values) & set(MOVED_SETTINGS)):
        moved = MOVED_SETTINGS[name]
        if _moved_value(out, name, where) != moved.default:
            raise SettingsError(
                f"{where}：设置项 {name} 已移至顶层 {moved.to}：{moved.why_zh}；"
                "请在完整的核查设置（VerifySettings）中设置它",
                f"{where}: setting {name} moved to the top-level {moved.to}: {moved.why_en}; "
                "set it in the full verification settings (VerifySettings)",
            )
        out.pop(name)
    return out


def _carried_over(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Verify ``values`` with the moved settings of ``statistical`` carried to the top level.

    A value saved in the old place is obeyed in the new one; both places with different
    values are refused (which one was meant is unknown).
    """
    nested = values.get("statistical")
    if not isinstance(nested, dict) or not set(nested) & set(MOVED_SETTINGS):
        return values
    out, nested = dict(values), dict(nested)
    for name in sorted(set(nested) & set(MOVED_SETTINGS)):
        moved = MOVED_SETTINGS[name]
        old = _moved_value(nested, name, f"{where}: statistical")
        nested.pop(name)
        if moved.to in out:
            new = _moved_value({name: out[moved.to]}, name, where)
            if new != old:
                raise SettingsError(
                    f"{where}：设置项 statistical.{name}（旧位置）为 {_shown(_as_json(old))}，"
                    f"而 {moved.to} 为 {_shown(_as_json(new))}：请只保留 {moved.to}",
                    f"{where}: setting statistical.{name} (its old place) is "
                    f"{_shown(_as_json(old))} but {moved.to} is {_shown(_as_json(new))}: "
                    f"keep {moved.to} only",
                )
        else:
            out[moved.to] = _as_json(old)
    out["statistical"] = nested
    return out


def _as_json(value: Any) -> Any:
    """Return a setting's value as JSON holds it (tuples as lists, nested)."""
    if isinstance(value, tuple):
        return [_as_json(v) for v in value]
    return value


@dataclass(frozen=True)
class VerifySettings:
    """Thresholds of the verification rules (serialisable: :meth:`to_dict`).

    Attributes
    ----------
    area_change_max_pct : float
        Largest change of building area from last year [%] without a finding (CON rules).
    occupants_change_max_pct : float
        Largest change of occupants from last year [%] without a finding.
    total_tolerance_pct : float
        Materiality of CON-003: the institution's own total (``reported_total_tce``) that does
        not reconcile with its items (:mod:`energy_audit.reconciliation`: the gap is not within
        the total's rounding, with the table's coefficients nor with
        ``reconciliation_coefficients``) is a finding only if its gap to *each* of the two
        computed totals is above this share of that total [% of the computed total] ...
    total_tolerance_tce : float
        ... and above this [tce]: a finding needs both, to both totals.
    reconciliation_coefficients : tuple of (str, float)
        Standard-coal coefficients some institutions use instead of the table's, by quantity
        column [kgce per canonical unit of the column]: an own total that matches with them
        (all applied together) up to its rounding reconciles (CON-003, STA-013). Default:
        natural gas 1.2143 kgce/m³ (some provincial standards; domain.md §2). Saved settings
        that hold it as ``statistical.reconciliation_coefficients`` (its place until it was
        shared) load with the value carried here (:data:`MOVED_SETTINGS`).
    electricity_price_yuan_per_kwh : tuple of float
        Plausible band of the implied electricity price [元/kWh] (domain.md §6: 0.5-1.2).
    gas_price_yuan_per_m3 : tuple of float
        Plausible band of the implied natural-gas price [元/m³] [unverified default].
    water_price_yuan_per_m3 : tuple of float
        Plausible band of the implied water price [元/m³] [unverified default].
    unit_slip_tolerance : float
        How far outside the price band a price corrected by a unit-slip factor may still lie
        (CON-007…009: the band widened to [low / (1 + tol), high × (1 + tol)]), and how close
        the own total's ratio to the computed one must be to 1,000 to be named kgce typed as
        tce (CON-003) [ratio: 0.25 = within 25 %]. The factors themselves are not a setting:
        every rule takes them from the one table :mod:`energy_audit.slips` (10ᵏ, k = ±1…±4;
        fuel densities for litre columns). A settings file that still holds the retired
        ``unit_slip_factors`` loads when it holds the value every run saved
        (``[10.0, 1000.0, 10000.0]``, now a part of the table) and is refused with a clear
        error otherwise (:meth:`from_dict`).
    vehicle_fuel_columns : tuple of str
        Returns columns that count as vehicle fuel (the form's vehicle-fuel lines 汽油, 柴油).
        LPG is left out: in public institutions it is a canteen fuel; add ``lpg_kg`` where LPG
        vehicles run.
    region_code : str
        Region whose emission factors and districts apply (Tianjin 120000).
    coefficient_table : str or None
        Path of a user coefficient table (None: the packaged GB/T 2589-2020 table).
    batch_share : float
        Share of a scope's returns (one source file, one district) on which one coverage,
        validity, consistency or plausibility rule must fire for the scope to be systemic
        [0-1, > 0]: its findings are then folded into one batch finding
        (:func:`energy_audit.verify.batches.fold_systemic`). A share exactly at the threshold
        is systemic.
    batch_min_returns : int
        ... and the fewest returns it must fire on [returns, ≥ 1] (exactly this many is
        systemic), so a rule firing on 3 of a small district's 5 returns stays 3 findings. A
        number above the returns verified switches folding off.
    statistical : StatisticalSettings
        Thresholds and switches of the statistical stage (nested object ``statistical`` in
        :meth:`to_dict` and JSON).
    """

    area_change_max_pct: float = 10.0
    occupants_change_max_pct: float = 10.0
    total_tolerance_pct: float = 2.0
    total_tolerance_tce: float = 0.05
    reconciliation_coefficients: tuple[tuple[str, float], ...] = DEFAULT_RECONCILIATION_COEFFICIENTS
    electricity_price_yuan_per_kwh: tuple[float, float] = (0.5, 1.2)
    gas_price_yuan_per_m3: tuple[float, float] = (2.0, 6.0)
    water_price_yuan_per_m3: tuple[float, float] = (2.5, 12.0)
    unit_slip_tolerance: float = 0.25
    vehicle_fuel_columns: tuple[str, ...] = ("gasoline_l", "diesel_l")
    region_code: str = "120000"
    coefficient_table: str | None = None
    batch_share: float = 0.5
    batch_min_returns: int = 20
    statistical: StatisticalSettings = field(default_factory=StatisticalSettings)

    def __post_init__(self) -> None:
        self._check_batch(self.batch_share, self.batch_min_returns, "settings")

    @staticmethod
    def _check_batch(share: Any, min_returns: Any, where: str) -> None:
        """Raise SettingsError if a batch threshold given as a number is out of its range."""
        if isinstance(share, int | float) and not isinstance(share, bool) and not 0 < share <= 1:
            raise SettingsError(
                f"{where}：设置项 batch_share 的值 {_shown(share)} 超出范围，应大于 0 且不大于 1",
                f"{where}: setting batch_share is {_shown(share)}, expected a number > 0 and ≤ 1",
            )
        if isinstance(min_returns, int) and not isinstance(min_returns, bool) and min_returns < 1:
            raise SettingsError(
                f"{where}：设置项 batch_min_returns 的值 {_shown(min_returns)} 超出范围，"
                "应为不小于 1 的整数",
                f"{where}: setting batch_min_returns is {_shown(min_returns)}, expected a whole "
                "number ≥ 1",
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-serialisable dict (``statistical`` nested)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, StatisticalSettings):
                out[f.name] = v.to_dict()
            else:
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "settings") -> VerifySettings:
        """Build settings from a dict such as :meth:`to_dict` returns; absent keys keep defaults.

        A retired setting (:data:`RETIRED_SETTINGS`, e.g. ``unit_slip_factors``) is checked as
        it was typed and dropped when it holds the value saved runs recorded (the settings of
        an old ``verify.json`` still load); any other value of it is refused, since it would
        no longer be obeyed. A moved setting (:data:`MOVED_SETTINGS`, e.g.
        ``statistical.reconciliation_coefficients``) saved in its old place is carried to its
        new one.

        Raises
        ------
        SettingsError
            If a key is unknown, a value is not of the field's type (the message names the
            setting, the value and the type expected), a batch threshold is out of its
            range (``batch_share`` in (0, 1], ``batch_min_returns`` ≥ 1), a retired setting
            holds another value than its saved one (the message says what replaced it) or a
            moved setting is given in both places with different values.
        """
        if isinstance(values, dict):
            cls._check_batch(values.get("batch_share"), values.get("batch_min_returns"), where)
            values = _carried_over(_without_retired(values, where), where)
        return _from_dict(cls, values, where)

    @classmethod
    def from_json(cls, path: str | Path) -> VerifySettings:
        """Read settings from a JSON file (an object of setting → value).

        Raises
        ------
        SettingsError
            If the file cannot be read, is not valid JSON (the message names the line and
            column), is not an object, or holds an unknown setting or a value of the wrong type.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise SettingsError(
                f"{path}：无法读取设置文件：文件不存在",
                f"{path}: cannot read settings: no such file",
            ) from exc
        except IsADirectoryError as exc:
            raise SettingsError(
                f"{path}：无法读取设置文件：这是一个文件夹",
                f"{path}: cannot read settings: it is a folder",
            ) from exc
        except UnicodeDecodeError as exc:
            raise SettingsError(
                f"{path}：无法读取设置文件：不是 UTF-8 文本",
                f"{path}: cannot read settings: not UTF-8 text",
            ) from exc
        except OSError as exc:
            raise SettingsError(
                f"{path}：无法读取设置文件：{exc.strerror or exc}",
                f"{path}: cannot read settings: {exc.strerror or exc}",
            ) from exc
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingsError(
                f"{path}：第 {exc.lineno} 行第 {exc.colno} 列不是有效的 JSON：{exc.msg}",
                f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}",
            ) from exc
        if not isinstance(values, dict):
            raise SettingsError(
                f'{path}：设置须为 JSON 对象（{{"设置项": 值}}）',
                f'{path}: settings must be a JSON object ({{"setting": value}})',
            )
        return cls.from_dict(values, str(path))
