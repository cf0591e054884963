"""The synthetic directory (名录库, data contract §1) and the true district trends."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from energy_audit.directory.codes import make_credit_codes
from energy_audit.districts import load_districts
from energy_audit.synthetic.columns import DIRECTORY_COLUMNS
from energy_audit.synthetic.parameters import (
    _CENTRAL_DISTRICTS,
    _DISTRICT_SIZE,
    _DISTRICT_TREND,
    _HEAT_BILLING_P,
    _MUNICIPAL_REGION_CODE,
    _REGION_NAME,
    _RETIRED_REGION_CODES,
    _SECTOR_PROFILES,
    _SECTORS,
    _STREAM_DIRECTORY,
    _TREND_PATTERN,
    _rng,
)
from energy_audit.synthetic.vocabulary import (
    _ASSOCIATION_FIELDS,
    _ASSOCIATION_SUFFIX,
    _DISTRICT_BUREAUS,
    _DISTRICT_HOSPITALS,
    _DISTRICT_ORGANIZATIONS,
    _DISTRICT_RESEARCH,
    _DISTRICT_SERVICES,
    _DISTRICT_VENUES,
    _MASS_ORGANIZATIONS,
    _MUNICIPAL_BUREAUS,
    _MUNICIPAL_HOSPITALS,
    _MUNICIPAL_SERVICES,
    _MUNICIPAL_VENUES,
    _RESEARCH_FIELDS,
    _STREET_HOSPITALS,
    _STREET_SCHOOLS,
    _STREET_SERVICES,
    _STREET_STEMS,
    _STREET_VENUES,
    _TOWN_STEMS,
    _UNIVERSITIES,
    _addresses,
    _contacts,
    _cycle_suffix,
    _digits,
    _numerals,
    _vocab,
)

__all__ = [
    "district_trends",
    "make_directory",
]


def _index_of(
    values: pl.Series | npt.ArrayLike, vocabulary: Sequence[str]
) -> npt.NDArray[np.int64]:
    """Position of each value in ``vocabulary`` (vectorised; unknown values raise)."""
    lookup = {v: i for i, v in enumerate(vocabulary)}
    series = values if isinstance(values, pl.Series) else pl.Series(np.asarray(values).astype(str))
    return series.replace_strict(lookup, return_dtype=pl.Int64).to_numpy()


def _gather_or_null(values: pl.Series, index: npt.NDArray[np.int64]) -> pl.Series:
    """``values[index]``, null where ``index`` is negative."""
    gathered = values.gather(np.maximum(index, 0))
    return gathered.zip_with(
        pl.Series(index >= 0), pl.Series([None] * index.size, dtype=values.dtype)
    )


def _pick_in_groups(
    child_group: npt.NDArray[np.int64],
    pool_rows: npt.NDArray[np.int64],
    pool_group: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """For each child, a uniformly random pool row of the same group (any group if none).

    Returns -1 where the pool is empty.
    """
    n = child_group.shape[0]
    if pool_rows.size == 0:
        return np.full(n, -1, dtype=np.int64)
    n_groups = int(max(child_group.max(initial=0), pool_group.max(initial=0))) + 1
    order = np.argsort(pool_group, kind="stable")
    sorted_rows = pool_rows[order]
    counts = np.bincount(pool_group, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    u = rng.random(n)
    c = counts[child_group]
    in_group = starts[child_group] + np.floor(u * c).astype(np.int64)
    anywhere = np.floor(u * pool_rows.size).astype(np.int64)
    return np.where(
        c > 0, sorted_rows[np.minimum(in_group, pool_rows.size - 1)], pool_rows[anywhere]
    )


def _largest_remainder(total: int, weights: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Split ``total`` into integers proportional to ``weights`` (Hamilton's method)."""
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(weights.shape[0], dtype=np.int64)
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype(np.int64)
    remainder = total - int(out.sum())
    out[np.argsort(-(exact - out), kind="stable")[:remainder]] += 1
    return out


def _district_table(districts: pl.DataFrame | None) -> pl.DataFrame:
    return load_districts(districts).sort("district_code")


def _check_directory_columns(directory: pl.DataFrame) -> None:
    missing = [c for c in DIRECTORY_COLUMNS if c not in directory.columns]
    if missing:
        raise ValueError(f"directory lacks column(s) {', '.join(missing)}")


# --------------------------------------------------------------------------------------------
# Directory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Role:
    """One kind of institution in the synthetic directory."""

    key: str
    level: str
    institution_type: str
    sector: str
    share: float  # share of the institutions above the minimum
    minimum: int  # per district for district/subdistrict roles, in all for municipal roles
    template: str  # placeholders: region district item cycle n stem parent parent_stem
    items: tuple[str, ...]
    item_keys: tuple[str, ...] | None = None  # keys (e.g. bureau) aligned with items
    parent_roles: tuple[str, ...] = ()
    parent_keys: tuple[str, ...] | None = None
    ordinal_by: str = "district"  # "role", "district" or "parent"
    rotate_items: bool = False  # start the item list at a different place in each district
    stem_template: str | None = None  # street/town offices: the stem their units' names use
    outer_only: bool = False  # towns: only outside the central districts
    subsector: str | None = None
    is_parent: bool = False  # roles that have subordinate units stay active


_MUNI_KEYS = tuple(k for k, _ in _MUNICIPAL_BUREAUS)
_DIST_KEYS = tuple(k for k, _ in _DISTRICT_BUREAUS)

_ROLES: Final[tuple[_Role, ...]] = (
    # municipal
    _Role("m_bureau", "municipal", "agency", "agency", 0.020, 5, "{item}{cycle}",
          tuple(n for _, n in _MUNICIPAL_BUREAUS), _MUNI_KEYS, ordinal_by="role", is_parent=True),
    _Role("m_university", "municipal", "public_service_unit", "university", 0.006, 1,
          "{item}{cycle}", _UNIVERSITIES, parent_roles=("m_bureau",), parent_keys=("education",),
          ordinal_by="role"),
    _Role("m_hospital", "municipal", "public_service_unit", "hospital", 0.012, 1, "{item}{cycle}",
          _MUNICIPAL_HOSPITALS, parent_roles=("m_bureau",), parent_keys=("health",),
          ordinal_by="role", subsector="三级医院"),
    _Role("m_school", "municipal", "public_service_unit", "school", 0.012, 1, "{region}第{n}{item}",
          ("中学",), parent_roles=("m_bureau",), parent_keys=("education",), ordinal_by="role"),
    _Role("m_venue", "municipal", "public_service_unit", "venue", 0.006, 1, "{item}{cycle}",
          _MUNICIPAL_VENUES, parent_roles=("m_bureau",), parent_keys=("culture", "sports"),
          ordinal_by="role"),
    _Role("m_research", "municipal", "public_service_unit", "research", 0.012, 1,
          "{region}{item}研究所{cycle}", _RESEARCH_FIELDS, parent_roles=("m_bureau",),
          parent_keys=("science",), ordinal_by="role"),
    _Role("m_other", "municipal", "public_service_unit", "other_service", 0.080, 1,
          "{parent}{item}{cycle}", _MUNICIPAL_SERVICES, parent_roles=("m_bureau",),
          ordinal_by="parent"),
    _Role("m_org", "municipal", "organization", "organization", 0.015, 1, "{item}{cycle}",
          _MASS_ORGANIZATIONS, ordinal_by="role"),
    # district
    _Role("d_gov", "district", "agency", "agency", 0.0, 1, "{region}{district}人民政府", ("",),
          is_parent=True),
    _Role("d_bureau", "district", "agency", "agency", 0.060, 5, "{region}{district}{item}{cycle}",
          tuple(n for _, n in _DISTRICT_BUREAUS), _DIST_KEYS, parent_roles=("d_gov",),
          is_parent=True),
    _Role("d_school", "district", "public_service_unit", "school", 0.220, 1,
          "{region}{district}第{n}{item}", ("小学", "中学", "幼儿园"), parent_roles=("d_bureau",),
          parent_keys=("education",)),
    _Role("d_hospital", "district", "public_service_unit", "hospital", 0.040, 1,
          "{region}{district}{item}{cycle}", _DISTRICT_HOSPITALS, parent_roles=("d_bureau",),
          parent_keys=("health",), subsector="二级医院"),
    _Role("d_venue", "district", "public_service_unit", "venue", 0.015, 0,
          "{region}{district}{item}{cycle}", _DISTRICT_VENUES, parent_roles=("d_bureau",),
          parent_keys=("culture",)),
    _Role("d_research", "district", "public_service_unit", "research", 0.005, 0,
          "{region}{district}{item}{cycle}", _DISTRICT_RESEARCH, parent_roles=("d_bureau",),
          parent_keys=("science",)),
    _Role("d_other", "district", "public_service_unit", "other_service", 0.130, 0,
          "{parent}{item}{cycle}", _DISTRICT_SERVICES, parent_roles=("d_bureau",),
          ordinal_by="parent"),
    _Role("d_org", "district", "organization", "organization", 0.025, 0,
          "{region}{district}{item}{cycle}", _DISTRICT_ORGANIZATIONS, parent_roles=("d_gov",)),
    # street / town
    _Role("s_street", "subdistrict", "agency", "agency", 0.035, 1,
          "{region}{district}{stem}办事处", _STREET_STEMS, parent_roles=("d_gov",),
          rotate_items=True, stem_template="{item}街道{cycle}", is_parent=True),
    _Role("s_town", "subdistrict", "agency", "agency", 0.025, 0,
          "{region}{district}{stem}人民政府", _TOWN_STEMS, parent_roles=("d_gov",),
          rotate_items=True, stem_template="{item}镇{cycle}", outer_only=True, is_parent=True),
    _Role("s_other", "subdistrict", "public_service_unit", "other_service", 0.120, 0,
          "{region}{district}{parent_stem}{item}{cycle}", _STREET_SERVICES,
          parent_roles=("s_street", "s_town"), ordinal_by="parent"),
    _Role("s_school", "subdistrict", "public_service_unit", "school", 0.060, 0,
          "{region}{district}{parent_stem}{item}{cycle}", _STREET_SCHOOLS,
          parent_roles=("s_street", "s_town"), ordinal_by="parent"),
    _Role("s_hospital", "subdistrict", "public_service_unit", "hospital", 0.025, 0,
          "{region}{district}{parent_stem}{item}{cycle}", _STREET_HOSPITALS,
          parent_roles=("s_street", "s_town"), ordinal_by="parent", subsector="基层医疗卫生机构"),
    _Role("s_venue", "subdistrict", "public_service_unit", "venue", 0.015, 0,
          "{region}{district}{parent_stem}{item}{cycle}", _STREET_VENUES,
          parent_roles=("s_street", "s_town"), ordinal_by="parent"),
)  # fmt: skip
_ROLE_NAMES: Final = tuple(r.key for r in _ROLES)
#: Subsector of a school, university or venue from its name: the first (pattern, subsector)
#: whose pattern the name contains, else the last entry.
_SUBSECTOR_BY_NAME: Final[Mapping[str, tuple[tuple[tuple[str, str], ...], str]]] = MappingProxyType(
    {
        "school": ((("幼儿园", "幼儿园"), ("小学", "小学")), "中学"),
        "university": ((("职业|专科", "高职院校"),), "本科院校"),
        "venue": ((("体育|健身|运动", "体育场馆"),), "文化场馆"),
    }
)
_TYPE_PREFIX: Final = {"agency": "11", "public_service_unit": "12", "organization": "13"}
_STATUS_SHARE: Final = {"dissolved": 0.015, "merged": 0.015}


def _role_minima(n_districts: int, n_outer: int) -> npt.NDArray[np.int64]:
    """Fewest institutions of each role in the city (district roles: per (outer) district)."""
    return np.array(
        [
            r.minimum
            if r.level == "municipal"
            else r.minimum * (n_outer if r.outer_only else n_districts)
            for r in _ROLES
        ],
        dtype=np.int64,
    )


def _compose(template: str, fields: Mapping[str, pl.Series | str]) -> pl.Series:
    """Fill a name template from vectorised fields (a tiny str.format for polars Series)."""
    pieces: list[pl.Expr] = []
    columns: dict[str, pl.Series] = {}
    for literal, field, _, _ in string.Formatter().parse(template):
        if literal:
            pieces.append(pl.lit(literal))
        if field is not None:
            value = fields[field]
            if isinstance(value, str):
                pieces.append(pl.lit(value))
            else:
                columns[field] = value
                pieces.append(pl.col(field))
    frame = pl.DataFrame(columns) if columns else pl.DataFrame({"_": [0]})
    return frame.select(pl.concat_str(pieces).alias("name")).to_series()


def _role_block(
    role: _Role,
    counts: npt.NDArray[np.int64],
    built: pl.DataFrame,
    districts: pl.DataFrame,
    location_weights: npt.NDArray[np.float64],
    first_row: int,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """Generate the rows of one role (vectorised)."""
    n_districts = districts.height
    if role.level == "municipal":
        n = int(counts.sum())
        district = rng.choice(n_districts, size=n, p=location_weights).astype(np.int64)
    else:
        district = np.repeat(np.arange(n_districts, dtype=np.int64), counts)
        n = district.shape[0]
    block = pl.DataFrame(
        {
            "row": np.arange(first_row, first_row + n, dtype=np.int64),
            "district": district,
        }
    )

    parent = np.full(n, -1, dtype=np.int64)
    if role.parent_roles and n:
        pool = built.filter(pl.col("role").is_in(list(role.parent_roles)))
        if role.parent_keys is not None:
            pool = pool.filter(pl.col("key").is_in(list(role.parent_keys)))
        pool_rows = pool["row"].to_numpy()
        if role.level == "municipal":
            parent = _pick_in_groups(
                np.zeros(n, dtype=np.int64), pool_rows, np.zeros(pool_rows.size, np.int64), rng
            )
        else:
            parent = _pick_in_groups(district, pool_rows, pool["district"].to_numpy(), rng)
    block = block.with_columns(parent_row=pl.Series(parent, dtype=pl.Int64))

    group = {"role": [], "district": ["district"], "parent": ["parent_row"]}[role.ordinal_by]
    if group:
        block = block.with_columns(k=pl.int_range(pl.len(), dtype=pl.Int64).over(group))
    else:
        block = block.with_columns(k=pl.int_range(pl.len(), dtype=pl.Int64))
    k = block["k"].to_numpy()
    n_items = len(role.items)
    offset = district * 7 if role.rotate_items else np.zeros(n, dtype=np.int64)
    item_index = (k + offset) % n_items
    cycle_index = k // n_items
    cycle = _cycle_suffix(cycle_index)

    parent_info = built.select("row", "name", "stem").rename(
        {"row": "parent_row", "name": "parent", "stem": "parent_stem"}
    )
    block = block.join(parent_info, on="parent_row", how="left", maintain_order="left")
    fields: dict[str, pl.Series | str] = {
        "region": _REGION_NAME,
        "district": districts["name_zh"].gather(district),
        "item": _vocab(role.items, item_index),
        "cycle": cycle,
        "n": _numerals(cycle_index + 1),
        "parent": block["parent"].fill_null(""),
        "parent_stem": block["parent_stem"].fill_null(""),
    }
    stem = (
        _compose(role.stem_template, fields)
        if role.stem_template
        else pl.Series([None] * n, dtype=pl.String)
    )
    fields["stem"] = stem.fill_null("")
    name = _compose(role.template, fields) if n else pl.Series([], dtype=pl.String)
    key = (
        _vocab(role.item_keys, item_index)
        if role.item_keys
        else pl.Series([role.key] * n, dtype=pl.String)
    )
    prefix = np.full(n, _TYPE_PREFIX[role.institution_type], dtype="U2")

    if role.key == "m_org":  # beyond the mass organisations: associations registered with 民政
        extra = k >= n_items
        if extra.any():
            j = k[extra] - n_items
            kinds = rng.choice(np.array(["51", "52", "53"]), size=j.size, p=[0.7, 0.15, 0.15])
            prefix[extra] = kinds
            suffix = pl.Series([_ASSOCIATION_SUFFIX[x] for x in ("51", "52", "53")]).gather(
                np.searchsorted(np.array(["51", "52", "53"]), kinds)
            )
            tail = _cycle_suffix(j // len(_ASSOCIATION_FIELDS))
            association = _REGION_NAME + _vocab(_ASSOCIATION_FIELDS, j) + suffix + tail
            name = name.scatter(np.flatnonzero(extra), association)
            pool_rows = built.filter(pl.col("role") == "m_bureau")["row"].to_numpy()
            parent[extra] = pool_rows[rng.integers(0, pool_rows.size, j.size)]

    subsector = pl.Series([role.subsector] * n, dtype=pl.String)
    if role.sector in _SUBSECTOR_BY_NAME:
        rules, otherwise = _SUBSECTOR_BY_NAME[role.sector]
        label = pl.lit(otherwise)
        for pattern, then in reversed(rules):
            label = (
                pl.when(pl.col("name").str.contains(pattern)).then(pl.lit(then)).otherwise(label)
            )
        subsector = pl.DataFrame({"name": name}).select(label).to_series()

    return pl.DataFrame(
        {
            "row": block["row"],
            "role": pl.Series([role.key] * n, dtype=pl.String),
            "district": block["district"],
            "key": key,
            "stem": stem,
            "name": name,
            "parent_row": pl.Series(parent, dtype=pl.Int64),
            "prefix": pl.Series(prefix, dtype=pl.String),
            "subsector": subsector,
        }
    )


def _organization_bodies(n: int, rng: np.random.Generator) -> npt.NDArray[np.str_]:
    """Distinct 8-character organization-code bodies: digits, and some ``MB`` + 6 digits.

    Distinctness comes from affine bijections i → (a·i + b) mod 10^k with a coprime to 10.
    """
    n_mb = min(int(0.15 * n), 900_000)
    n_digits = n - n_mb
    if n_digits > 10**8:
        raise ValueError(f"n_institutions={n} is too many for distinct organization codes")
    a = int(rng.choice(np.array([7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47]))) * 10_000_019
    b = int(rng.integers(0, 10**8))
    digits = (a * np.arange(n_digits, dtype=np.int64) + b) % 10**8
    a6 = int(rng.choice(np.array([7, 11, 13, 17, 19, 23]))) * 1009
    b6 = int(rng.integers(0, 10**6))
    mb = (a6 * np.arange(n_mb, dtype=np.int64) + b6) % 10**6
    bodies = np.empty(n, dtype="U8")
    is_mb = np.zeros(n, dtype=bool)
    is_mb[rng.choice(n, size=n_mb, replace=False)] = True
    bodies[~is_mb] = _digits(digits, 8)
    bodies[is_mb] = np.char.add("MB", _digits(mb, 6))
    return bodies


def _heat_billing(central: npt.NDArray[np.bool_], rng: np.random.Generator) -> npt.NDArray[np.str_]:
    """Heat billing of institutions in central or outer districts (:data:`_HEAT_BILLING_P`)."""
    heat_u = rng.random(central.shape[0])
    p_central, p_outer = _HEAT_BILLING_P["central"], _HEAT_BILLING_P["outer"]
    metered_p = np.where(central, p_central[0], p_outer[0])
    by_area_p = np.where(central, p_central[1], p_outer[1])
    return np.where(
        heat_u < metered_p, "metered", np.where(heat_u < metered_p + by_area_p, "by_area", "none")
    )


def _key_energy_users(
    sector: npt.NDArray[np.str_], level: npt.NDArray[np.str_], rng: np.random.Generator
) -> npt.NDArray[np.bool_]:
    """Draw the 重点用能单位 flag: the sector's share, × 0.3 below the municipal level."""
    key_share = np.array([_SECTOR_PROFILES[s].key_user_share for s in _SECTORS])
    return rng.random(sector.shape[0]) < key_share[_index_of(sector, _SECTORS)] * np.where(
        level == "municipal", 1.0, 0.3
    )


def make_directory(
    n_institutions: int, seed: int, *, districts: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Make a synthetic directory of public institutions (公共机构名录库).

    Municipal bureaus with their subordinate units (universities, hospitals, schools, venues,
    research institutes, service centres), mass organisations and a few associations; in each
    district a government, bureaus, street offices (and towns outside the centre) and the units
    under them. Parents always exist, come earlier in the hierarchy (no cycles) and are never
    of a lower administrative level than their units. About 1.5 % of the leaf units are dissolved
    and 1.5 % merged into an active unit (of the same kind and district where there is one).

    Parameters
    ----------
    n_institutions : int
        Number of institutions [institutions]; at least the minimum the hierarchy needs (about
        160 for Tianjin's 16 districts).
    seed : int
        Random seed: the same seed gives the same frame.
    districts : polars.DataFrame, optional
        District table (see :func:`energy_audit.districts.load_districts`); default Tianjin.

    Returns
    -------
    polars.DataFrame
        The columns of :data:`DIRECTORY_COLUMNS` with canonical codes as values
        (``key_energy_user`` boolean, everything else strings).

    Raises
    ------
    ValueError
        If ``n_institutions`` is below the minimum.

    Examples
    --------
    >>> directory = make_directory(500, seed=1)
    >>> directory.height, directory["district_code"].n_unique()
    (500, 16)
    """
    table = _district_table(districts)
    codes = table["district_code"].to_list()
    n_districts = len(codes)
    outer = np.array([c not in _CENTRAL_DISTRICTS for c in codes])
    minima = _role_minima(n_districts, int(outer.sum()))
    minimum = int(minima.sum())
    if n_institutions < minimum:
        raise ValueError(f"n_institutions must be at least {minimum}, got {n_institutions}")
    rng = _rng(seed, _STREAM_DIRECTORY)

    size = np.array([_DISTRICT_SIZE.get(c, 1.0) for c in codes])
    location = np.where(~outer, 3.0, np.where(np.array(codes) == "120116", 1.0, 0.5))
    location = location / location.sum()

    # How many of each role: the minima, then the rest by share (largest remainder).
    extra = _largest_remainder(n_institutions - minimum, np.array([r.share for r in _ROLES]))

    blocks: list[pl.DataFrame] = []
    built = pl.DataFrame(
        schema={"row": pl.Int64, "role": pl.String, "district": pl.Int64, "key": pl.String,
                "stem": pl.String, "name": pl.String}
    )  # fmt: skip
    first_row = 0
    for role, n_extra in zip(_ROLES, extra, strict=True):
        if role.level == "municipal":
            counts = np.array([role.minimum + n_extra])
        else:
            weights = size * outer if role.outer_only else size
            base = np.where(outer, role.minimum, 0 if role.outer_only else role.minimum)
            counts = base + rng.multinomial(int(n_extra), weights / weights.sum())
        block = _role_block(role, counts, built, table, location, first_row, rng)
        first_row += block.height
        blocks.append(block)
        built = pl.concat([built, block.select(built.columns)], how="vertical", rechunk=False)
    frame = pl.concat(blocks, how="vertical", rechunk=True)
    n = frame.height

    district = frame["district"].to_numpy()
    role_ix = _index_of(frame["role"], _ROLE_NAMES)
    level = np.array([r.level for r in _ROLES])[role_ix]
    institution_type = np.array([r.institution_type for r in _ROLES])[role_ix]
    sector = np.array([r.sector for r in _ROLES])[role_ix]
    is_parent_role = np.array([r.is_parent for r in _ROLES])[role_ix]

    # Credit codes: prefix by type, region code of the registering office.
    district_codes = np.array(codes)
    region = np.where(
        level == "municipal",
        _MUNICIPAL_REGION_CODE,
        district_codes[district],
    ).astype("U6")
    city_registered = rng.random(n) < 0.05
    region[city_registered] = _MUNICIPAL_REGION_CODE
    for code, (retired, share) in _RETIRED_REGION_CODES.items():
        if code not in codes:
            continue
        here = (district_codes[district] == code) & (rng.random(n) < share)
        region[here] = rng.choice(np.array(retired), size=int(here.sum()))
    bodies = _organization_bodies(n, rng)
    ids = make_credit_codes(frame["prefix"].to_numpy().astype("U2"), region, bodies)

    # Status: some leaf units dissolved or merged into an active unit of the same role/district.
    u = rng.random(n)
    status = np.full(n, "active", dtype="U9")
    leaf = ~is_parent_role
    status[leaf & (u < _STATUS_SHARE["dissolved"])] = "dissolved"
    merged = leaf & (u >= _STATUS_SHARE["dissolved"]) & (u < sum(_STATUS_SHARE.values()))
    merged_rows = np.flatnonzero(merged)
    active_rows = np.flatnonzero((status == "active") & ~merged)
    group = role_ix * n_districts + district
    target = _pick_in_groups(group[merged_rows], active_rows, group[active_rows], rng)
    status[merged_rows] = np.where(target >= 0, "merged", "active")
    ids_series = pl.Series(ids, dtype=pl.String)
    merged_into_row = np.full(n, -1, dtype=np.int64)
    merged_into_row[merged_rows] = target
    merged_into = _gather_or_null(ids_series, merged_into_row)
    parent_id = _gather_or_null(ids_series, frame["parent_row"].to_numpy())

    # Heating, key energy users, addresses and contacts.
    heat = _heat_billing(~outer[district], rng)
    key_user = _key_energy_users(sector, level, rng)
    address = _addresses(table["name_zh"].gather(district), rng)
    contact_name, contact_phone = _contacts(n, rng)

    return pl.DataFrame(
        {
            "institution_id": ids_series,
            "name": frame["name"],
            "district_code": pl.Series(district_codes[district], dtype=pl.String),
            "institution_type": pl.Series(institution_type, dtype=pl.String),
            "sector": pl.Series(sector, dtype=pl.String),
            "subsector": frame["subsector"],
            "admin_level": pl.Series(level, dtype=pl.String),
            "parent_id": parent_id,
            "address": address,
            "key_energy_user": pl.Series(key_user, dtype=pl.Boolean),
            "heat_billing": pl.Series(heat, dtype=pl.String),
            "status": pl.Series(status, dtype=pl.String),
            "merged_into_id": merged_into,
            "contact_name": contact_name,
            "contact_phone": contact_phone,
        }
    )


# --------------------------------------------------------------------------------------------
# Returns
# --------------------------------------------------------------------------------------------


def district_trends(districts: pl.DataFrame | None = None) -> pl.DataFrame:
    """Return the true yearly change of energy and water intensity per district.

    Parameters
    ----------
    districts : polars.DataFrame, optional
        District table (default Tianjin's). Districts the generator has no value for get one from
        a fixed pattern.

    Returns
    -------
    polars.DataFrame
        ``district_code``, ``name_zh``, ``intensity_change_per_year`` [fraction per year,
        negative = reduction].
    """
    table = _district_table(districts)
    codes = table["district_code"].to_list()
    trend = [
        _DISTRICT_TREND.get(code, _TREND_PATTERN[i % len(_TREND_PATTERN)])
        for i, code in enumerate(codes)
    ]
    return table.select("district_code", "name_zh").with_columns(
        intensity_change_per_year=pl.Series(trend, dtype=pl.Float64)
    )
