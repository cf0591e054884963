"""Directory maintenance: the next quarter's snapshot and directory defects.

:func:`evolve_directory` makes the snapshot and its change table;
:func:`inject_directory_defects` injects one defect of each directory kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from energy_audit.directory.codes import CREDIT_CODE_ALPHABET, make_credit_codes
from energy_audit.synthetic.columns import _HEAT_BILLING, _LEVELS, DIRECTORY_COLUMNS
from energy_audit.synthetic.directory import (
    _TYPE_PREFIX,
    _check_directory_columns,
    _district_table,
    _gather_or_null,
    _heat_billing,
    _key_energy_users,
    _pick_in_groups,
)
from energy_audit.synthetic.parameters import (
    _CENTRAL_DISTRICTS,
    _MUNICIPAL_REGION_CODE,
    _SECTORS,
    _STREAM_DIRECTORY_DEFECTS,
    _STREAM_EVOLUTION,
    _rng,
)
from energy_audit.synthetic.vocabulary import (
    _NEW_UNITS,
    _ROAD_STEMS,
    _ROAD_SUFFIXES,
    _addresses,
    _contacts,
    _cycle_suffix,
    _vocab,
)

__all__ = [
    "CHANGES_SCHEMA",
    "DEFAULT_EVOLUTION_RATES",
    "DIRECTORY_CHANGE_KINDS",
    "DIRECTORY_DEFECT_KINDS",
    "DIRECTORY_DEFECT_SCHEMA",
    "EVOLUTION_EVENTS",
    "evolve_directory",
    "inject_directory_defects",
]

# --------------------------------------------------------------------------------------------
# Directory maintenance: next quarter's snapshot and directory defects
# --------------------------------------------------------------------------------------------

#: Kinds of change between two directory snapshots, one row per change (the vocabulary of the
#: quarterly diff).
DIRECTORY_CHANGE_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "added": "an institution new in the directory (field, old_value and new_value empty)",
        "dissolved": "status active → dissolved (field status)",
        "merged": "status active → merged (field merged_into_id; new_value the active target)",
        "renamed": "the name changed (field name)",
        "changed": "another field changed, one row per field (district_code, parent_id, …)",
        "removed": "a row deleted from the file without being marked dissolved or merged",
    }
)

#: Columns of a change table (:func:`evolve_directory`); values as text, booleans
#: ``true``/``false``.
CHANGES_SCHEMA: Final[Mapping[str, pl.DataType]] = MappingProxyType(
    {
        "institution_id": pl.String(),
        "change": pl.String(),
        "field": pl.String(),
        "old_value": pl.String(),
        "new_value": pl.String(),
    }
)

#: What can happen to the directory in a quarter (keys of the ``rates`` of
#: :func:`evolve_directory`).
EVOLUTION_EVENTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "added": "a new public service unit beside an existing one (branch school, campus, centre)",
        "dissolved": "an active institution is dissolved (撤销)",
        "merged": "an active institution merges into an active one of its sector, level, district",
        "removed": "an active institution nobody refers to disappears from the file, unmarked",
        "renamed": "an institution is renamed (研究所 → 研究院, 中学 → 实验中学, …)",
        "moved_district": "a municipal institution moves to another district (and address)",
        "reparented": "an institution moves under another parent of the same level and sector",
        "address": "an institution's address changes",
        "heat_billing": "the heat billing changes (e.g. by area → metered)",
        "key_energy_user": "the 重点用能单位 flag flips",
        "contact": "a new contact person (name and phone) or a new phone number",
    }
)

#: Default rate of each event per quarter, as a share of the active institutions the event can
#: happen to (``added``: of all active institutions). At least one when the rate is positive and
#: an institution qualifies.
DEFAULT_EVOLUTION_RATES: Final[Mapping[str, float]] = MappingProxyType(
    {
        "added": 0.008,
        "dissolved": 0.005,
        "merged": 0.005,
        "removed": 0.001,
        "renamed": 0.005,
        "moved_district": 0.005,
        "reparented": 0.005,
        "address": 0.01,
        "heat_billing": 0.005,
        "key_energy_user": 0.005,
        "contact": 0.01,
    }
)

#: Directory defects :func:`inject_directory_defects` injects, with a one-line description.
DIRECTORY_DEFECT_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "invalid_check_char": "a credit code whose check character (position 18) is wrong",
        "duplicate_code": "two rows, two institutions, with the same credit code",
        "duplicate_institution": "one institution twice under two valid codes: same name, address",
        "unknown_district": "a district that is not one of the region's (塘沽区, abolished 2009)",
        "unknown_type": "an institution type outside the contract (企业单位)",
        "unknown_sector": "a sector outside the contract (商业企业)",
        "unknown_level": "an administrative level outside the contract (省级)",
        "parent_missing": "parent_id is a valid code that is not in the directory",
        "parent_dissolved": "an active institution under a dissolved parent",
        "parent_merged": "an active institution under a merged parent",
        "parent_cycle": "two institutions each the parent of the other (A → B → A)",
        "level_above_parent": "a municipal institution under a street/town-level one",
        "type_code_mismatch": "an agency (机关) whose code starts 12 (事业单位)",
        "enterprise_code": "a valid enterprise code (91…) in the directory",
        "merged_without_target": "status merged but no merged_into_id",
        "required_empty": "a required field left empty (name, or district_code)",
    }
)

#: Columns of the truth table of :func:`inject_directory_defects`.
DIRECTORY_DEFECT_SCHEMA: Final[Mapping[str, pl.DataType]] = MappingProxyType(
    {
        "institution_id": pl.String(),
        "defect": pl.String(),
        "field": pl.String(),
        "detail": pl.String(),
    }
)

_STATUSES: Final = ("active", "dissolved", "merged")
_INSTITUTION_TYPES: Final = tuple(_TYPE_PREFIX)
#: Renames: (pattern at the end of the name, replacement, text the name must not contain); the
#: first rule that applies wins.
_RENAME_RULES: Final = (
    ("研究所$", "研究院", None),
    ("(小学|中学|幼儿园)$", "实验${1}", "实验"),
    ("中医医院$", "中医院", None),
    ("卫生服务站$", "卫生服务中心", None),
    ("信息中心$", "大数据中心", None),
    ("执法大队$", "执法支队", None),
    ("文化馆$", "文化艺术中心", None),
    ("监测站$", "监测中心", None),
    ("培训中心$", "教育培训中心", "教育培训"),
    ("技术推广中心$", "技术推广服务中心", None),
    ("委员会$", "局", None),
    ("协会$", "学会", None),
)
#: Name endings of the units :func:`evolve_directory` adds beside an existing one, by sector,
#: after a road name (南京路分校); other_service units get a new centre under the parent instead.
_BRANCH_SUFFIX: Final[Mapping[str, str]] = MappingProxyType(
    {
        "school": "分校",
        "university": "校区",
        "hospital": "院区",
        "venue": "分馆",
        "research": "试验站",
    }
)
#: Values no contract enumeration knows, written by ``unknown_*`` directory defects.
_UNKNOWN_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "district_code": "塘沽区",
        "institution_type": "企业单位",
        "sector": "商业企业",
        "admin_level": "省级",
    }
)
_UNKNOWN_COLUMNS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "unknown_district": "district_code",
        "unknown_type": "institution_type",
        "unknown_sector": "sector",
        "unknown_level": "admin_level",
    }
)
_MAX_PARENT_DEPTH: Final = 10_000  # longer chains of parents are taken for cycles


def _codes_of(
    values: pl.Series, vocabulary: Sequence[str], *, allow_null: bool = False
) -> npt.NDArray[np.int64]:
    """Position of each value in ``vocabulary`` (-1 for null when allowed).

    Raises
    ------
    ValueError
        If a value is not in the vocabulary (or null where not allowed), naming the column.
    """
    unknown = values.filter(~values.is_in(list(vocabulary)) & values.is_not_null()).unique()
    if unknown.len() or (values.null_count() and not allow_null):
        shown = sorted(unknown.to_list())[:5] + ([None] if values.null_count() else [])
        raise ValueError(
            f"column {values.name} has values outside {list(vocabulary)}: {shown} (evolve a "
            "canonical directory)"
        )
    lookup = {v: i for i, v in enumerate(vocabulary)}
    return values.replace_strict(lookup, default=-1, return_dtype=pl.Int64).to_numpy()


def _rows_of(ids: pl.Series, values: pl.Series) -> npt.NDArray[np.int64]:
    """Row of each value among ``ids`` (-1 where the value is null or not an id)."""
    index = pl.DataFrame({"_v": ids, "_r": np.arange(ids.len(), dtype=np.int64)})
    return (
        pl.DataFrame({"_v": values})
        .join(index, on="_v", how="left", maintain_order="left")["_r"]
        .fill_null(-1)
        .to_numpy()
    )


def _endless(parent: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Rows whose chain of parents never ends (in a cycle or leading into one).

    Pointer doubling: after k rounds ``jump`` is the 2^k-th ancestor (-1 past a root), so a row
    still pointing somewhere once 2^k reaches the row count has an endless chain.
    """
    jump = parent.copy()
    steps = 1
    while True:
        alive = jump >= 0
        if not alive.any() or steps >= parent.shape[0]:
            return alive
        jump = np.where(alive, jump[np.maximum(jump, 0)], -1)
        steps *= 2


def _count(rate: float, eligible: int) -> int:
    """How many of ``eligible`` a rate selects: at least one when the rate is positive."""
    if rate <= 0 or eligible == 0:
        return 0
    return min(eligible, max(1, round(rate * eligible)))


def _pick_rows(
    eligible: npt.NDArray[np.bool_], rate: float, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """Pick a random share ``rate`` of the eligible rows (sorted)."""
    rows = np.flatnonzero(eligible)
    k = _count(rate, rows.size)
    return np.sort(rng.choice(rows, size=k, replace=False)) if k else rows[:0]


def _surviving_ancestor(
    start: npt.NDArray[np.int64], parent: npt.NDArray[np.int64], leaving: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """First row up the chain from ``start`` (inclusive) that is not leaving (-1: none)."""
    row = start.copy()
    for _ in range(_MAX_PARENT_DEPTH):
        up = (row >= 0) & leaving[np.maximum(row, 0)]
        if not up.any():
            return row
        row[up] = parent[row[up]]
    raise ValueError("the directory's chain of parents has a cycle")


def _renamed(names: pl.Series) -> pl.Series:
    """Each name renamed by the first rule of :data:`_RENAME_RULES` that applies (else null)."""
    name = pl.col("name")
    expr = pl.lit(None, dtype=pl.String)
    for pattern, replacement, unless in reversed(_RENAME_RULES):
        applies = name.str.contains(pattern)
        if unless is not None:
            applies = applies & ~name.str.contains(unless, literal=True)
        expr = pl.when(applies).then(name.str.replace(pattern, replacement)).otherwise(expr)
    return pl.DataFrame({"name": names}).select(expr.alias("name")).to_series()


def _is_in(values: pl.Series, other: pl.Series) -> pl.Series:
    """``values.is_in(other)`` that hashes the few ``values`` rather than the many ``other``."""
    return values.is_in(other.filter(other.is_in(values.implode())).implode())


def _distinct_names(names: pl.Series, taken: pl.Series) -> pl.Series:
    """Make new names distinct from ``taken`` and from each other: add （二）, （三）, …."""
    out = names
    for attempt in range(1, 1000):
        clash = (_is_in(out, taken) | ~out.is_first_distinct()).to_numpy()
        if not clash.any():
            return out
        suffix = _cycle_suffix(np.full(int(clash.sum()), attempt, dtype=np.int64))
        out = out.scatter(np.flatnonzero(clash), names.filter(clash) + suffix)
    raise ValueError("could not make distinct names")  # pragma: no cover


_BODY_CHARS: Final = np.array(list(CREDIT_CODE_ALPHABET))


def _new_codes(
    prefix: str, region: npt.NDArray[np.str_], taken: pl.Series, rng: np.random.Generator
) -> pl.Series:
    """Make valid credit codes whose organization code (characters 9-17) is not in ``taken``.

    Organization-code bodies are ``MA`` and six random characters of the credit-code alphabet
    (make_directory uses digits and ``MB``).
    """
    n = region.shape[0]
    out = pl.Series([None] * n, dtype=pl.String)
    taken_org = taken.drop_nulls().str.slice(8, 9)
    todo = np.arange(n)
    while todo.size:
        tail = _BODY_CHARS[rng.integers(0, _BODY_CHARS.size, (todo.size, 6))]
        bodies = np.char.add("MA", np.ascontiguousarray(tail).view("U6").ravel())
        codes = pl.Series(make_credit_codes(prefix, region[todo], bodies), dtype=pl.String)
        org = codes.str.slice(8, 9)
        ok = (~_is_in(org, taken_org) & org.is_first_distinct()).to_numpy()
        out = out.scatter(todo[ok], codes.filter(ok))
        taken_org = pl.concat([taken_org, org.filter(ok)])
        todo = todo[~ok]
    return out


def _change_rows(
    ids: pl.Series,
    change: str,
    field: str | None = None,
    old: pl.Series | None = None,
    new: pl.Series | None = None,
) -> pl.DataFrame:
    """Rows of a change table (:data:`CHANGES_SCHEMA`)."""
    n = ids.len()

    def text(values: pl.Series | None) -> pl.Series:
        if values is None:
            return pl.Series([None] * n, dtype=pl.String)
        return values.cast(pl.String)

    return pl.DataFrame(
        {
            "institution_id": ids,
            "change": [change] * n,
            "field": [field] * n,
            "old_value": text(old),
            "new_value": text(new),
        },
        schema=dict(CHANGES_SCHEMA),
    )


def _evolution_rates(rates: Mapping[str, float] | None) -> dict[str, float]:
    out = dict(DEFAULT_EVOLUTION_RATES)
    for event, rate in (rates or {}).items():
        if event not in EVOLUTION_EVENTS:
            raise ValueError(f"unknown event {event!r}; known: {list(EVOLUTION_EVENTS)}")
        if not 0 <= rate <= 1:
            raise ValueError(f"rate of {event!r} must be between 0 and 1, got {rate}")
        out[event] = float(rate)
    return out


def evolve_directory(
    directory: pl.DataFrame,
    seed: int,
    *,
    rates: Mapping[str, float] | None = None,
    districts: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Make the next quarter's snapshot of a directory, with the table of the changes made.

    What a quarter of directory maintenance brings (:data:`EVOLUTION_EVENTS`; at most one event
    per institution, except that children of a leaving institution also move):

    - institutions leave: dissolved; merged into an active institution of the same sector, level
      and district (that stays active); or, rarely, removed from the file without being marked
      (only institutions nobody refers to). Institutions other rows are merged into stay.
    - the active children of a leaving institution move to the merge target when it is at or
      above their level and no cycle results, else to the nearest remaining ancestor (or none):
      recorded as ``changed`` ``parent_id`` rows.
    - renames, moves to another parent of the parent's level and sector (in its district below
      the municipal level), municipal institutions moving district (district_code and address),
      new addresses, heat billing, 重点用能单位 flags and contacts.
    - new public service units beside an existing one (a branch school 分校, a hospital campus
      院区, a new centre under the same parent …), with the template's parent, district, level,
      sector and subsector, valid unique credit codes (prefix 12, organization codes not used in
      the directory) and unique names; appended at the end.

    In a directory without directory defects, parents stay acyclic and never below their
    children's level, and no active institution is left under a dissolved or merged one.

    Parameters
    ----------
    directory : polars.DataFrame
        A canonical directory (:data:`DIRECTORY_COLUMNS`, e.g. from :func:`make_directory`) with
        unique credit codes and known district, level, sector and status values. Not changed.
    seed : int
        Random seed: the same directory and seed give the same result.
    rates : mapping of str to float, optional
        Rates per quarter overriding :data:`DEFAULT_EVOLUTION_RATES` (keys of
        :data:`EVOLUTION_EVENTS`), each a share of the active institutions the event can happen
        to; ``added`` is a share of all active institutions. 0 switches an event off.
    districts : polars.DataFrame, optional
        District table (default Tianjin's).

    Returns
    -------
    snapshot : polars.DataFrame
        The next snapshot: the directory's rows in order (removed ones left out), updated, then
        the added institutions. Extra columns are kept (null for added rows).
    changes : polars.DataFrame
        :data:`CHANGES_SCHEMA`, one row per change (:data:`DIRECTORY_CHANGE_KINDS`): ``added``
        and ``removed`` with empty field and values; ``dissolved`` as status active → dissolved;
        ``merged`` as merged_into_id null → target; ``renamed`` as name; ``changed`` one row per
        field. Sorted by change, institution_id and field.

    Raises
    ------
    ValueError
        If a column is missing, a credit code is null or repeated, a value is outside the
        contract's (or the district table's) codes, the parents above a leaving institution
        form a cycle, or a rate is unknown or outside [0, 1].

    Examples
    --------
    >>> from energy_audit.synthetic import make_directory
    >>> directory = make_directory(2000, seed=1)
    >>> snapshot, changes = evolve_directory(directory, seed=1)
    >>> sorted(changes["change"].unique())
    ['added', 'changed', 'dissolved', 'merged', 'removed', 'renamed']
    """
    _check_directory_columns(directory)
    rate = _evolution_rates(rates)
    table = _district_table(districts)
    codes = table["district_code"].to_list()
    rng = _rng(seed, _STREAM_EVOLUTION)
    n = directory.height
    ids = directory["institution_id"]
    if ids.null_count() or ids.n_unique() != n:
        raise ValueError("institution_id must be unique and never null to evolve a directory")
    status = _codes_of(directory["status"], _STATUSES)
    level = _codes_of(directory["admin_level"], _LEVELS)
    sector = _codes_of(directory["sector"], _SECTORS)
    district = _codes_of(directory["district_code"], codes)
    heat = _codes_of(directory["heat_billing"], _HEAT_BILLING, allow_null=True)
    service_unit = (directory["institution_type"] == "public_service_unit").to_numpy()
    parent = _rows_of(ids, directory["parent_id"])
    is_target = ids.is_in(directory["merged_into_id"].drop_nulls().implode()).to_numpy()
    has_child = np.zeros(n, dtype=bool)
    has_child[parent[parent >= 0]] = True
    active = status == _STATUSES.index("active")

    # 1. Leaving: removed (nobody refers to them), dissolved, merged (into a staying target).
    free = active & ~is_target
    removed = _pick_rows(free & ~has_child, rate["removed"], rng)
    free[removed] = False
    dissolved = _pick_rows(free, rate["dissolved"], rng)
    free[dissolved] = False
    merging = _pick_rows(free, rate["merged"], rng)
    leaving = np.zeros(n, dtype=bool)
    leaving[np.concatenate([removed, dissolved, merging])] = True
    group = (sector * len(_LEVELS) + level) * len(codes) + district
    pool = np.flatnonzero(active & ~leaving)
    target = _pick_in_groups(group[merging], pool, group[pool], rng)
    found = (target >= 0) & (group[np.maximum(target, 0)] == group[merging])
    leaving[merging[~found]] = False  # no other institution of its kind: no merge
    merging, target = merging[found], target[found]
    stay = active & ~leaving

    # 2. Active children of leaving institutions: to the merge target, else up the chain.
    new_parent = parent.copy()
    orphans = np.flatnonzero(stay & (parent >= 0) & leaving[np.maximum(parent, 0)])
    up = _surviving_ancestor(parent[orphans], parent, leaving)
    merged_into = np.full(n, -1, dtype=np.int64)
    merged_into[merging] = target
    via = merged_into[parent[orphans]]
    use_via = (via >= 0) & (level[np.maximum(via, 0)] <= level[orphans]) & (via != orphans)
    while True:
        new_parent[orphans] = np.where(use_via, via, up)
        cyclic = use_via & _endless(new_parent)[orphans]
        if not cyclic.any():
            break
        use_via &= ~cyclic

    # 3. Moves to another parent of the same level and sector (same district below municipal).
    own = stay.copy()  # institutions that may still have an event of their own
    own[orphans] = False
    reparent = _pick_rows(own & (new_parent >= 0), rate["reparented"], rng)
    own[reparent] = False
    supervises = np.zeros(n, dtype=bool)
    supervises[new_parent[stay & (new_parent >= 0)]] = True
    parent_kind = (level * len(_SECTORS) + sector) * (len(codes) + 1) + np.where(
        level == _LEVELS.index("municipal"), len(codes), district
    )
    supervisors = np.flatnonzero(stay & supervises)
    before = new_parent[reparent]
    choice = _pick_in_groups(parent_kind[before], supervisors, parent_kind[supervisors], rng)
    moves = (choice >= 0) & (parent_kind[np.maximum(choice, 0)] == parent_kind[before])
    moves &= (choice != before) & (choice != reparent)
    while True:
        new_parent[reparent] = np.where(moves, choice, before)
        cyclic = moves & _endless(new_parent)[reparent]
        if not cyclic.any():
            break
        moves &= ~cyclic
    own[reparent[~moves]] = True
    moved_parent = np.flatnonzero(new_parent != parent)

    # 4. Changes of other fields, one event per institution.
    names = directory["name"]
    n_rename = _count(rate["renamed"], int(own.sum()))
    rename = np.zeros(0, dtype=np.int64)
    new_names = pl.Series([], dtype=pl.String)
    if n_rename:
        candidates = np.flatnonzero(own)
        candidates = rng.choice(
            candidates, size=min(candidates.size, 4 * n_rename + 16), replace=False
        )
        proposed = _renamed(names.gather(candidates))
        usable = proposed.is_not_null() & ~_is_in(proposed, names) & proposed.is_first_distinct()
        keep = np.flatnonzero(usable.fill_null(False).to_numpy())[:n_rename]
        order = np.argsort(candidates[keep])
        rename, new_names = candidates[keep][order], proposed.gather(keep[order])
        own[rename] = False

    new_district = district.copy()
    targets = is_target.copy()
    targets[target] = True  # merge targets stay in the district of what merged into them
    movable = own & ~targets & (level == _LEVELS.index("municipal"))
    relocate = _pick_rows(movable, rate["moved_district"], rng)
    own[relocate] = False
    new_district[relocate] = (
        district[relocate] + rng.integers(1, len(codes), relocate.size)
    ) % len(codes)
    district_names = table["name_zh"]
    relocate_address = _addresses(district_names.gather(new_district[relocate]), rng)

    readdress = _pick_rows(own, rate["address"], rng)
    own[readdress] = False
    new_address = _addresses(district_names.gather(district[readdress]), rng)

    reheat = _pick_rows(own, rate["heat_billing"], rng)
    own[reheat] = False
    heat_now = heat[reheat]
    shift = rng.integers(1, len(_HEAT_BILLING), reheat.size)
    new_heat = np.where(heat_now >= 0, (heat_now + shift) % len(_HEAT_BILLING), shift)

    reflag = _pick_rows(own, rate["key_energy_user"], rng)
    own[reflag] = False

    recontact = _pick_rows(own, rate["contact"], rng)
    own[recontact] = False
    new_person = rng.random(recontact.size) < 0.6
    contact_names, contact_phones = _contacts(recontact.size, rng)

    # 5. New units beside an existing public service unit, under the same parent.
    n_added = _count(rate["added"], int(active.sum()))
    templates = np.flatnonzero(stay & service_unit & (new_parent >= 0))
    added = np.zeros(0, dtype=np.int64)
    if n_added and templates.size:
        drawn = templates[rng.integers(0, templates.size, 2 * n_added + 16)]
        plain = ~names.gather(drawn).str.contains("|".join(_BRANCH_SUFFIX.values())).to_numpy()
        added = drawn[plain][:n_added]
    k = added.size
    added_sector = pl.Series(np.array(_SECTORS)[sector[added]], dtype=pl.String)
    added_parent = new_parent[added]
    stems = _vocab(_ROAD_STEMS, rng.integers(0, len(_ROAD_STEMS), k)) + _vocab(
        _ROAD_SUFFIXES, rng.integers(0, len(_ROAD_SUFFIXES), k)
    )
    units = _vocab(_NEW_UNITS, rng.integers(0, len(_NEW_UNITS), k))
    added_names = (
        pl.DataFrame(
            {
                "template": names.gather(added),
                "parent": names.gather(added_parent),
                "sector": added_sector,
                "stem": stems,
                "unit": units,
            }
        )
        .select(
            pl.when(pl.col("sector").is_in(list(_BRANCH_SUFFIX)))
            .then(
                pl.concat_str(
                    "template",
                    "stem",
                    pl.col("sector").replace_strict(dict(_BRANCH_SUFFIX), default=""),
                )
            )
            .otherwise(pl.concat_str("parent", "unit"))
        )
        .to_series()
    )
    final_names = names.clone().scatter(rename, new_names) if rename.size else names
    added_names = _distinct_names(added_names, final_names)
    added_level = np.array(_LEVELS)[level[added]]
    added_district = new_district[added]
    district_codes = np.array(codes)
    region = np.where(
        added_level == "municipal", _MUNICIPAL_REGION_CODE, district_codes[added_district]
    ).astype("U6")
    added_ids = _new_codes("12", region, ids, rng)
    central = np.array([c in _CENTRAL_DISTRICTS for c in codes], dtype=bool)
    added_heat = _heat_billing(central[added_district], rng)
    added_key = _key_energy_users(added_sector.to_numpy().astype(str), added_level, rng)
    added_address = _addresses(district_names.gather(added_district), rng)
    added_contact, added_phone = _contacts(k, rng)

    # The snapshot.
    def set_values(column: str, rows: npt.NDArray[np.int64], values: object) -> pl.Series:
        series = directory[column].clone()
        return series.scatter(rows, values) if len(rows) else series

    status_rows = np.concatenate([dissolved, merging])
    status_values = ["dissolved"] * dissolved.size + ["merged"] * merging.size
    person_rows = recontact[new_person]
    parent_ids = _gather_or_null(ids, new_parent[moved_parent])
    updated = directory.with_columns(
        set_values("status", status_rows, status_values),
        set_values("merged_into_id", merging, ids.gather(target)),
        set_values("parent_id", moved_parent, parent_ids),
        set_values("name", rename, new_names),
        set_values("district_code", relocate, pl.Series(district_codes[new_district[relocate]])),
        set_values(
            "address",
            np.concatenate([relocate, readdress]),
            pl.concat([relocate_address, new_address]),
        ),
        set_values("heat_billing", reheat, pl.Series(np.array(_HEAT_BILLING)[new_heat])),
        set_values(
            "key_energy_user",
            reflag,
            ~directory["key_energy_user"].gather(reflag).fill_null(False),
        ),
        set_values("contact_name", person_rows, contact_names.filter(new_person)),
        set_values("contact_phone", recontact, contact_phones),
    )
    added_frame = pl.DataFrame(
        {
            "institution_id": added_ids,
            "name": added_names,
            "district_code": pl.Series(district_codes[added_district], dtype=pl.String),
            "institution_type": pl.Series(["public_service_unit"] * k, dtype=pl.String),
            "sector": added_sector,
            "subsector": directory["subsector"].gather(added),
            "admin_level": pl.Series(added_level, dtype=pl.String),
            "parent_id": ids.gather(added_parent),
            "address": added_address,
            "key_energy_user": pl.Series(added_key, dtype=pl.Boolean),
            "heat_billing": pl.Series(added_heat, dtype=pl.String),
            "status": pl.Series(["active"] * k, dtype=pl.String),
            "merged_into_id": pl.Series([None] * k, dtype=pl.String),
            "contact_name": added_contact,
            "contact_phone": added_phone,
        }
    ).cast({c: directory.schema[c] for c in DIRECTORY_COLUMNS})
    keep_rows = np.ones(n, dtype=bool)
    keep_rows[removed] = False
    snapshot = pl.concat(
        [updated.filter(pl.Series(keep_rows)), added_frame], how="diagonal"
    ).select(directory.columns)

    # The change table.
    def field_rows(
        change: str, field: str, rows: npt.NDArray[np.int64], new: pl.Series
    ) -> pl.DataFrame:
        old_values = directory[field].gather(rows)
        differs = (old_values.cast(pl.String).ne_missing(new.cast(pl.String))).to_numpy()
        return _change_rows(
            ids.gather(rows[differs]),
            change,
            field,
            old_values.filter(differs),
            new.filter(differs),
        )

    parts = [
        _change_rows(added_ids, "added"),
        _change_rows(ids.gather(removed), "removed"),
        _change_rows(
            ids.gather(dissolved),
            "dissolved",
            "status",
            directory["status"].gather(dissolved),
            pl.Series(["dissolved"] * dissolved.size),
        ),
        _change_rows(
            ids.gather(merging),
            "merged",
            "merged_into_id",
            directory["merged_into_id"].gather(merging),
            ids.gather(target),
        ),
        field_rows("renamed", "name", rename, new_names),
        field_rows("changed", "parent_id", moved_parent, parent_ids),
        field_rows("changed", "district_code", relocate, updated["district_code"].gather(relocate)),
    ]
    for field, rows in (
        ("address", np.concatenate([relocate, readdress])),
        ("heat_billing", reheat),
        ("key_energy_user", reflag),
        ("contact_name", person_rows),
        ("contact_phone", recontact),
    ):
        rows = np.sort(rows)
        parts.append(field_rows("changed", field, rows, updated[field].gather(rows)))
    changes = pl.concat(parts, how="vertical").sort(
        "change", "institution_id", "field", nulls_last=True, maintain_order=True
    )
    return snapshot, changes


def inject_directory_defects(
    directory: pl.DataFrame, seed: int, *, kinds: Iterable[str] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Inject directory defects (:data:`DIRECTORY_DEFECT_KINDS`) into a copy of a directory.

    One defect of each kind, each on its own active institution that no other row refers to
    (as parent or merge target), so that defects do not mask each other: ``parent_cycle`` makes
    two institutions of one level each other's parent, ``required_empty`` empties one name and
    one district_code, ``duplicate_institution`` appends a copy of a row under a new valid code
    (same prefix and region code), ``duplicate_code`` gives a second institution of the same type
    the first one's code. New codes are valid unless the defect says otherwise; unknown labels are
    written as text (``塘沽区``, ``企业单位``, ``商业企业``, ``省级``) and emptied fields are null,
    so the frame keeps the canonical dtypes.

    Parameters
    ----------
    directory : polars.DataFrame
        A canonical directory without defects (e.g. from :func:`make_directory` or
        :func:`evolve_directory`). Not changed.
    seed : int
        Random seed: the same directory and seed give the same result.
    kinds : iterable of str, optional
        Defect kinds to inject (default all of :data:`DIRECTORY_DEFECT_KINDS`).

    Returns
    -------
    directory : polars.DataFrame
        The directory with the defects: the same rows in the same order, edited, plus the
        ``duplicate_institution`` rows at the end.
    truth : polars.DataFrame
        :data:`DIRECTORY_DEFECT_SCHEMA`, one row per defective row: ``institution_id`` as it is
        in the returned frame (for ``parent_*`` and ``level_above_parent`` the child; for
        ``duplicate_code`` the shared code; for ``duplicate_institution`` the new code),
        ``defect``, the ``field`` concerned and a ``detail`` sentence naming the values. Sorted
        by defect and institution_id.

    Raises
    ------
    ValueError
        If a kind is unknown, a column is missing, or the directory has too few institutions
        that nobody refers to (about 20 are needed).

    Examples
    --------
    >>> from energy_audit.synthetic import make_directory
    >>> directory, truth = inject_directory_defects(make_directory(500, seed=1), seed=1)
    >>> truth["defect"].n_unique() == len(DIRECTORY_DEFECT_KINDS)
    True
    >>> truth.filter(pl.col("defect") == "unknown_sector")["detail"].item()
    "sector '商业企业' is not a known value (was 'hospital')"
    """
    _check_directory_columns(directory)
    wanted = list(DIRECTORY_DEFECT_KINDS) if kinds is None else list(dict.fromkeys(kinds))
    unknown = [k for k in wanted if k not in DIRECTORY_DEFECT_KINDS]
    if unknown:
        raise ValueError(f"unknown defect kind(s) {unknown}; known: {list(DIRECTORY_DEFECT_KINDS)}")
    rng = _rng(seed, _STREAM_DIRECTORY_DEFECTS)
    n = directory.height
    ids = directory["institution_id"]
    level = directory["admin_level"].replace_strict(
        {v: i for i, v in enumerate(_LEVELS)}, default=-1, return_dtype=pl.Int64
    )
    level = level.fill_null(-1).to_numpy()
    itype = directory["institution_type"].fill_null("").to_numpy().astype(str)
    status = directory["status"].fill_null("").to_numpy().astype(str)
    references = pl.concat([directory["parent_id"], directory["merged_into_id"]]).drop_nulls()
    referenced = ids.is_in(references.implode()).to_numpy()
    pool = rng.permutation(np.flatnonzero((status == "active") & ~referenced))
    used = np.zeros(n, dtype=bool)

    def take(where: npt.NDArray[np.bool_] | None = None, *, required: bool = True) -> int:
        """Use the next unused row of the shuffled pool (of those ``where`` marks)."""
        ok = ~used[pool] if where is None else ~used[pool] & where[pool]
        rows = pool[ok]
        if rows.size == 0:
            if not required:
                return -1
            raise ValueError(
                "the directory has too few active institutions nobody refers to for its defects"
            )
        used[rows[0]] = True
        return int(rows[0])

    def one_of(where: npt.NDArray[np.bool_]) -> int:
        """Use a random unused row among those ``where`` marks (-1 if none)."""
        rows = np.flatnonzero(where & ~used)
        if rows.size == 0:
            return -1
        row = int(rows[rng.integers(0, rows.size)])
        used[row] = True
        return row

    edits: dict[str, dict[int, str | None]] = {}
    truth: list[tuple[str, str, str, str]] = []
    extra_rows: list[pl.DataFrame] = []

    def edit(row: int, column: str, value: str | None) -> None:
        edits.setdefault(column, {})[row] = value

    def new_code(prefix: str, region: str) -> str:
        return _new_codes(prefix, np.array([region]), ids, rng)[0]

    def value(column: str, row: int) -> object:
        return directory[column][row]

    name = directory["name"]

    def note(institution_id: str, field: str, detail: str) -> None:
        truth.append((institution_id, kind, field, detail))  # the kind being injected

    for kind in wanted:
        if kind == "invalid_check_char":
            r = take()
            right = ids[r][17]
            wrong = CREDIT_CODE_ALPHABET[(CREDIT_CODE_ALPHABET.index(right) + 1) % 31]
            edit(r, "institution_id", ids[r][:17] + wrong)
            note(
                ids[r][:17] + wrong,
                "institution_id",
                f"check character {wrong!r}, expected {right!r}",
            )
        elif kind == "duplicate_code":
            a = take()
            b = take(itype == itype[a])
            edit(b, "institution_id", ids[a])
            note(ids[a], "institution_id", f"{name[a]} and {name[b]} (code was {ids[b]})")
        elif kind == "duplicate_institution":
            a = take()
            code = new_code(ids[a][:2], ids[a][2:8])
            extra_rows.append(directory.slice(a, 1).with_columns(institution_id=pl.lit(code)))
            note(code, "institution_id", f"same name and address as {ids[a]} ({name[a]})")
        elif kind in _UNKNOWN_COLUMNS:
            column = _UNKNOWN_COLUMNS[kind]
            r = take()
            label = _UNKNOWN_LABELS[column]
            edit(r, column, label)
            note(
                ids[r],
                column,
                f"{column} {label!r} is not a known value (was {value(column, r)!r})",
            )
        elif kind == "parent_missing":
            r = take()
            code = new_code("11", ids[r][2:8])
            edit(r, "parent_id", code)
            note(ids[r], "parent_id", f"parent {code} is not in the directory")
        elif kind in ("parent_dissolved", "parent_merged"):
            inactive = kind.removeprefix("parent_")
            has_status = status == inactive
            top = level[has_status].min() if has_status.any() else -1
            p = one_of(has_status & (level == top))
            if p < 0:  # no institution of that status yet: make one
                p = take(level == _LEVELS.index("municipal"), required=False)
                p = take() if p < 0 else p
                edit(p, "status", inactive)
                if inactive == "merged":
                    edit(p, "merged_into_id", ids[one_of(status == "active")])
            child = take(level >= level[p])
            edit(child, "parent_id", ids[p])
            note(ids[child], "parent_id", f"active, under {ids[p]}, which is {inactive}")
        elif kind == "parent_cycle":
            a = take()
            b = take(level == level[a])
            edit(a, "parent_id", ids[b])
            edit(b, "parent_id", ids[a])
            note(ids[a], "parent_id", f"{ids[a]} → {ids[b]} → {ids[a]}")
            note(ids[b], "parent_id", f"{ids[b]} → {ids[a]} → {ids[b]}")
        elif kind == "level_above_parent":
            m = take(level == _LEVELS.index("municipal"), required=False)
            if m < 0:
                m = take()
                edit(m, "admin_level", "municipal")
            s = one_of((status == "active") & (level == _LEVELS.index("subdistrict")))
            if s < 0:
                raise ValueError("the directory has no active subdistrict institution")
            edit(m, "parent_id", ids[s])
            note(ids[m], "admin_level", f"municipal, under {ids[s]} (subdistrict)")
        elif kind == "type_code_mismatch":
            r = take(itype == "agency", required=False)
            if r >= 0:
                code = new_code("12", ids[r][2:8])
                edit(r, "institution_id", code)
            else:
                r = take(itype == "public_service_unit")
                code = ids[r]
                edit(r, "institution_type", "agency")
            note(code, "institution_type", f"agency (机关) with a code starting {code[:2]}")
        elif kind == "enterprise_code":
            r = take()
            code = new_code("91", ids[r][2:8])
            edit(r, "institution_id", code)
            note(code, "institution_id", f"enterprise code 91… for a {itype[r]}")
        elif kind == "merged_without_target":
            r = take()
            edit(r, "status", "merged")
            edit(r, "merged_into_id", None)
            note(ids[r], "merged_into_id", "status merged, merged_into_id empty")
        elif kind == "required_empty":
            for column in ("name", "district_code"):
                r = take()
                edit(r, column, None)
                note(ids[r], column, f"{column} is empty")

    out = directory.with_columns(
        directory[column]
        .clone()
        .scatter(list(values), pl.Series(list(values.values()), dtype=pl.String))
        for column, values in edits.items()
    )
    out = pl.concat([out, *extra_rows], how="vertical")
    truth_frame = pl.DataFrame(truth, schema=dict(DIRECTORY_DEFECT_SCHEMA), orient="row").sort(
        "defect", "institution_id", "field", maintain_order=True
    )
    return out, truth_frame
