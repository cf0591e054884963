"""Directory maintenance: the next quarter's snapshot, its change table, directory defects."""

from __future__ import annotations

import polars as pl
import pytest

from energy_audit import contract
from energy_audit.directory.codes import credit_codes_valid, validate_credit_code
from energy_audit.districts import load_districts
from energy_audit.synthetic import (
    CHANGES_SCHEMA,
    DIRECTORY_CHANGE_KINDS,
    DIRECTORY_COLUMNS,
    DIRECTORY_DEFECT_KINDS,
    DIRECTORY_DEFECT_SCHEMA,
    EVOLUTION_EVENTS,
    evolve_directory,
    inject_directory_defects,
)

SEED = 11  # the seed of conftest's directory
LEVEL_RANK = {"municipal": 0, "district": 1, "subdistrict": 2}


# --- directory maintenance: the next quarter ---------------------------------------------------


def snapshot_diff(old: pl.DataFrame, new: pl.DataFrame) -> set[tuple[str | None, ...]]:
    """The changes between two snapshots, computed here independently of the generator.

    A status → merged change is the ``merged`` row of merged_into_id; values compared as text.
    """
    old_ids, new_ids = set(old["institution_id"]), set(new["institution_id"])
    rows: set[tuple[str | None, ...]] = {(i, "added", None, None, None) for i in new_ids - old_ids}
    rows |= {(i, "removed", None, None, None) for i in old_ids - new_ids}
    both = old.join(new, on="institution_id", suffix="_new")
    for column in DIRECTORY_COLUMNS[1:]:
        before, after = both[column].cast(pl.String), both[f"{column}_new"].cast(pl.String)
        differs = before.ne_missing(after)
        for code, a, b in zip(
            both["institution_id"].filter(differs),
            before.filter(differs),
            after.filter(differs),
            strict=True,
        ):
            if column == "status":
                assert (a, b) in {("active", "dissolved"), ("active", "merged")}, (code, a, b)
                if b == "merged":
                    continue
                change = "dissolved"
            else:
                change = {"merged_into_id": "merged", "name": "renamed"}.get(column, "changed")
            rows.add((code, change, column, a, b))
    return rows


def assert_sound(directory: pl.DataFrame) -> None:
    """What every clean snapshot keeps: valid unique codes and names, a sound hierarchy."""
    ids = directory["institution_id"]
    assert ids.n_unique() == directory.height
    assert credit_codes_valid(ids.to_list()).all()
    assert ids.str.slice(8, 9).n_unique() == directory.height  # organization codes too
    assert directory["name"].n_unique() == directory.height
    info = directory.select(
        pl.col("institution_id").alias("parent_id"),
        pl.col("admin_level").alias("parent_level"),
        pl.col("status").alias("parent_status"),
        pl.col("district_code").alias("parent_district"),
    )
    children = directory.filter(pl.col("parent_id").is_not_null()).join(
        info, on="parent_id", how="left"
    )
    assert children["parent_level"].null_count() == 0  # every parent exists
    child_rank = children["admin_level"].replace_strict(LEVEL_RANK)
    assert (child_rank >= children["parent_level"].replace_strict(LEVEL_RANK)).all()
    active = children.filter(pl.col("status") == "active")
    assert (active["parent_status"] == "active").all()
    local = children.filter(pl.col("parent_level") != "municipal")
    assert (local["district_code"] == local["parent_district"]).all()
    merged = directory.filter(pl.col("status") == "merged").join(
        info.rename({"parent_id": "merged_into_id"}), on="merged_into_id", how="left"
    )
    assert (merged["parent_status"] == "active").all()
    parent_of = dict(zip(ids, directory["parent_id"], strict=True))
    for start in ids:
        seen, node = set(), start
        while node is not None:
            assert node not in seen, f"cycle through {start}"
            seen.add(node)
            node = parent_of[node]


@pytest.fixture(scope="module")
def quarter(directory: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return evolve_directory(directory, SEED)


def test_evolve_same_seed_same_result(
    directory: pl.DataFrame, quarter: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    before = directory.clone()
    again = evolve_directory(directory, SEED)
    assert again[0].equals(quarter[0])
    assert again[1].equals(quarter[1])
    assert directory.equals(before)  # the input is not changed
    other = evolve_directory(directory, SEED + 1)
    assert not other[1].equals(quarter[1])


def test_evolve_truth_is_the_difference(
    directory: pl.DataFrame, quarter: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    snapshot, changes = quarter
    assert changes.schema == pl.Schema(CHANGES_SCHEMA)
    assert snapshot.schema == directory.schema
    assert set(changes["change"]) == set(DIRECTORY_CHANGE_KINDS)
    assert set(changes.rows()) == snapshot_diff(directory, snapshot)
    assert changes.height == len(set(changes.rows()))
    fields = set(changes.filter(pl.col("change") == "changed")["field"])
    assert fields == {
        "parent_id", "district_code", "address", "heat_billing", "key_energy_user",
        "contact_name", "contact_phone",
    }  # fmt: skip
    # Rates of about 0.5-1 % per quarter.
    counts = dict(changes.group_by("change").len().rows())
    for kind in ("added", "dissolved", "merged", "renamed"):
        assert 0.003 * directory.height <= counts[kind] <= 0.012 * directory.height, kind
    assert 1 <= counts["removed"] <= 0.003 * directory.height


def test_evolve_each_kind(
    directory: pl.DataFrame, quarter: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    snapshot, changes = quarter
    new = {r["institution_id"]: r for r in snapshot.iter_rows(named=True)}
    old = {r["institution_id"]: r for r in directory.iter_rows(named=True)}

    def of(kind: str) -> pl.DataFrame:
        return changes.filter(pl.col("change") == kind)

    added = of("added")["institution_id"].to_list()
    assert not set(added) & set(old)
    assert snapshot["institution_id"].tail(len(added)).sort().to_list() == sorted(added)
    for code in added:
        row = new[code]
        assert code.startswith("12") and validate_credit_code(code).is_valid
        assert row["status"] == "active" and row["institution_type"] == "public_service_unit"
        parent = new[row["parent_id"]]
        assert parent["status"] == "active"
        assert LEVEL_RANK[parent["admin_level"]] <= LEVEL_RANK[row["admin_level"]]
        assert row["name"].startswith("天津") and row["address"].startswith("天津市")
    for code in of("removed")["institution_id"]:
        assert code not in new and old[code]["status"] == "active"
        assert code not in set(directory["parent_id"]) | set(directory["merged_into_id"])
    for code in of("dissolved")["institution_id"]:
        assert (old[code]["status"], new[code]["status"]) == ("active", "dissolved")
    for code, target in of("merged").select("institution_id", "new_value").iter_rows():
        assert (old[code]["status"], new[code]["status"]) == ("active", "merged")
        assert new[code]["merged_into_id"] == target and new[target]["status"] == "active"
        for column in ("sector", "district_code", "admin_level"):
            assert new[target][column] == new[code][column]
    for code, before, after in (
        of("renamed").select("institution_id", "old_value", "new_value").iter_rows()
    ):
        assert old[code]["name"] == before != after == new[code]["name"]
    moved = of("changed").filter(pl.col("field") == "district_code")
    for code, after in moved.select("institution_id", "new_value").iter_rows():
        assert new[code]["admin_level"] == "municipal"
        assert new[code]["address"].startswith("天津市" + district_name(after))


def district_name(code: str) -> str:
    return dict(load_districts().select("district_code", "name_zh").iter_rows())[code]


def test_evolve_several_quarters_stay_sound(directory: pl.DataFrame) -> None:
    assert_sound(directory)
    snapshot = directory
    for q in range(4):
        nxt, changes = evolve_directory(snapshot, q)
        assert_sound(nxt)
        assert set(changes.rows()) == snapshot_diff(snapshot, nxt)
        counts = dict(changes.group_by("change").len().rows())
        assert nxt.height == snapshot.height + counts["added"] - counts["removed"]
        snapshot = nxt


def test_evolve_children_of_leaving_parents_move(directory: pl.DataFrame) -> None:
    rates = {"dissolved": 0.05, "merged": 0.05, "added": 0.0}
    snapshot, changes = evolve_directory(directory, SEED, rates=rates)
    assert_sound(snapshot)
    leaving = set(changes.filter(pl.col("change").is_in(["dissolved", "merged"]))["institution_id"])
    orphans = directory.filter(
        pl.col("parent_id").is_in(list(leaving))
        & (pl.col("status") == "active")
        & ~pl.col("institution_id").is_in(list(leaving))
    )
    assert orphans.height >= 5
    moves = changes.filter(pl.col("field") == "parent_id")
    moved = dict(zip(moves["institution_id"], moves["old_value"], strict=True))
    for code, parent in orphans.select("institution_id", "parent_id").iter_rows():
        assert moved[code] == parent
    # Some move to the institution their parent merged into.
    target_of = dict(
        changes.filter(pl.col("change") == "merged")
        .select("institution_id", "new_value")
        .iter_rows()
    )
    new_parent = dict(moves.select("institution_id", "new_value").iter_rows())
    assert any(target_of.get(moved[c]) == new_parent[c] for c in orphans["institution_id"])


def test_evolve_rates(directory: pl.DataFrame) -> None:
    nothing, none = evolve_directory(directory, SEED, rates=dict.fromkeys(EVOLUTION_EVENTS, 0.0))
    assert nothing.equals(directory) and none.is_empty()
    only_added = {**dict.fromkeys(EVOLUTION_EVENTS, 0.0), "added": 0.05}
    grown, changes = evolve_directory(directory, SEED, rates=only_added)
    assert set(changes["change"]) == {"added"}
    assert changes.height == round(0.05 * directory.filter(pl.col("status") == "active").height)
    assert grown.head(directory.height).equals(directory)
    with pytest.raises(ValueError, match="unknown event 'born'"):
        evolve_directory(directory, SEED, rates={"born": 0.1})
    with pytest.raises(ValueError, match="between 0 and 1"):
        evolve_directory(directory, SEED, rates={"added": 1.5})


def test_evolve_refuses_unusable_directories(directory: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="unique"):
        evolve_directory(pl.concat([directory, directory.head(1)]), SEED)
    with pytest.raises(ValueError, match=r"column sector has values .*商业企业"):
        evolve_directory(directory.with_columns(sector=pl.lit("商业企业")), SEED)
    with pytest.raises(ValueError, match="lacks column"):
        evolve_directory(directory.drop("status"), SEED)


# --- directory defects -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def defective(directory: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return inject_directory_defects(directory, SEED)


def test_directory_defects_all_kinds(
    directory: pl.DataFrame, defective: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    frame, truth = defective
    assert truth.schema == pl.Schema(DIRECTORY_DEFECT_SCHEMA)
    assert frame.schema == directory.schema  # canonical dtypes kept
    assert set(truth["defect"]) == set(DIRECTORY_DEFECT_KINDS)
    assert frame.height == directory.height + 1  # the duplicate institution
    again = inject_directory_defects(directory, SEED)
    assert again[0].equals(frame) and again[1].equals(truth)
    # No collateral edits: one edited row per truth row, the appended duplicate aside.
    head = frame.head(directory.height)
    edited = pl.DataFrame(
        {
            c: head[c].cast(pl.String).ne_missing(directory[c].cast(pl.String))
            for c in DIRECTORY_COLUMNS
        }
    ).select(pl.any_horizontal(pl.all()).sum())
    assert edited.item() == truth.height - 1


def test_directory_defects_are_in_the_frame(
    directory: pl.DataFrame, defective: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    frame, truth = defective
    columns = contract.table("directory")
    known = {c.name: {v.code for v in c.values} for c in columns.columns if c.values}
    known["district_code"] = set(load_districts()["district_code"])
    ids = set(frame["institution_id"])
    rows: dict[str, list[dict[str, object]]] = {}
    for row in frame.iter_rows(named=True):
        rows.setdefault(row["institution_id"], []).append(row)

    def one(code: object) -> dict[str, object]:
        assert isinstance(code, str) and len(rows[code]) == 1, code
        return rows[code][0]

    for code, defect, field in truth.select("institution_id", "defect", "field").iter_rows():
        if defect == "duplicate_code":
            assert len(rows[code]) == 2 and rows[code][0]["name"] != rows[code][1]["name"]
            continue
        row = one(code)
        parent = one(row["parent_id"]) if row["parent_id"] in ids else None
        if defect == "invalid_check_char":
            check = validate_credit_code(code)
            assert not check.is_valid and check.expected_check_char != code[-1]
            assert check.expected_organization_check_char == code[16]
        elif defect == "duplicate_institution":
            assert validate_credit_code(code).is_valid
            twins = frame.filter(
                (pl.col("name") == row["name"]) & (pl.col("address") == row["address"])
            )
            assert twins.height == 2 and twins["institution_id"].n_unique() == 2
        elif defect.startswith("unknown_"):
            assert isinstance(row[field], str) and row[field] not in known[field]
        elif defect == "parent_missing":
            assert row["parent_id"] not in ids and validate_credit_code(row["parent_id"]).is_valid
        elif defect in ("parent_dissolved", "parent_merged"):
            assert row["status"] == "active" and parent is not None
            assert parent["status"] == defect.removeprefix("parent_")
        elif defect == "parent_cycle":
            assert parent is not None and parent["parent_id"] == code
        elif defect == "level_above_parent":
            assert parent is not None
            assert (row["admin_level"], parent["admin_level"]) == ("municipal", "subdistrict")
        elif defect == "type_code_mismatch":
            assert row["institution_type"] == "agency" and code.startswith("12")
        elif defect == "enterprise_code":
            assert code.startswith("91") and validate_credit_code(code).is_valid
        elif defect == "merged_without_target":
            assert row["status"] == "merged" and row["merged_into_id"] is None
        elif defect == "required_empty":
            assert row[field] is None
        else:  # pragma: no cover
            raise AssertionError(f"untested defect {defect}")
    # Codes written by the injector are valid unless the defect is an invalid code.
    fine = frame.filter(
        ~pl.col("institution_id").is_in(
            truth.filter(pl.col("defect") == "invalid_check_char")["institution_id"].to_list()
        )
    )
    assert credit_codes_valid(fine["institution_id"].to_list()).all()


def test_directory_defects_kinds_and_errors(
    directory: pl.DataFrame, quarter: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    frame, truth = inject_directory_defects(directory, SEED, kinds=["parent_cycle"])
    assert set(truth["defect"]) == {"parent_cycle"} and truth.height == 2
    assert frame.height == directory.height
    _, evolved = inject_directory_defects(quarter[0], SEED)  # an evolved snapshot works too
    assert set(evolved["defect"]) == set(DIRECTORY_DEFECT_KINDS)
    with pytest.raises(ValueError, match="unknown defect kind"):
        inject_directory_defects(directory, SEED, kinds=["typo"])
    with pytest.raises(ValueError, match="too few"):
        inject_directory_defects(directory.with_columns(status=pl.lit("dissolved")), SEED)
