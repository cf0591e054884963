"""The synthetic directory: codes, hierarchy, districts, sectors, levels, status."""

from __future__ import annotations

import polars as pl
import pytest

from energy_audit.directory.codes import credit_codes_valid, validate_credit_code
from energy_audit.districts import load_districts
from energy_audit.synthetic import (
    DIRECTORY_COLUMNS,
    make_directory,
)

SEED = 11  # the seed of conftest's directory
LEVEL_RANK = {"municipal": 0, "district": 1, "subdistrict": 2}


# --- directory -------------------------------------------------------------------------------


def test_directory_columns_and_codes(directory: pl.DataFrame) -> None:
    assert directory.columns == list(DIRECTORY_COLUMNS)
    assert directory.height == 2000
    assert directory["institution_id"].n_unique() == 2000
    assert credit_codes_valid(directory["institution_id"].to_list()).all()
    for code in directory["institution_id"].sample(50, seed=1):
        assert validate_credit_code(code).is_valid


def test_directory_prefix_matches_type(directory: pl.DataFrame) -> None:
    prefix = directory.select(
        pl.col("institution_type"), pl.col("institution_id").str.slice(0, 2).alias("prefix")
    )
    allowed = {
        "agency": {"11"},
        "public_service_unit": {"12"},
        "organization": {"13", "51", "52", "53"},
    }
    for kind, code in prefix.unique().iter_rows():
        assert code in allowed[kind], (kind, code)
    assert prefix.filter(pl.col("prefix").is_in(["51", "52", "53"])).height >= 3


def test_directory_region_codes(directory: pl.DataFrame) -> None:
    region = directory.select(pl.col("institution_id").str.slice(2, 6), "district_code")
    retired = region.filter(pl.col("institution_id") == "120225")
    assert retired.height > 0
    assert set(retired["district_code"]) == {"120119"}  # 蓟州区, formerly 蓟县 (120225)


def test_directory_covers_districts_sectors_levels(directory: pl.DataFrame) -> None:
    assert set(directory["district_code"]) == set(load_districts()["district_code"])
    assert set(directory["sector"]) == {
        "agency", "university", "school", "hospital", "venue", "research", "other_service",
        "organization",
    }  # fmt: skip
    assert set(directory["institution_type"]) == {"agency", "public_service_unit", "organization"}
    assert set(directory["admin_level"]) == set(LEVEL_RANK)
    assert set(directory["heat_billing"]) == {"metered", "by_area", "none"}
    assert set(directory["status"]) == {"active", "dissolved", "merged"}
    assert directory["name"].str.contains("天津").all()


def test_directory_hierarchy(directory: pl.DataFrame) -> None:
    ids = set(directory["institution_id"])
    parents = directory.filter(pl.col("parent_id").is_not_null())
    assert parents.height > 0.8 * directory.height
    assert set(parents["parent_id"]) <= ids
    # A child's level is never above its parent's; a district unit's parent is in its district.
    joined = parents.join(
        directory.select(
            pl.col("institution_id").alias("parent_id"),
            pl.col("admin_level").alias("parent_level"),
            pl.col("district_code").alias("parent_district"),
        ),
        on="parent_id",
    )
    child = joined["admin_level"].replace_strict(LEVEL_RANK)
    parent = joined["parent_level"].replace_strict(LEVEL_RANK)
    assert (child >= parent).all()
    local = joined.filter(pl.col("parent_level") != "municipal")
    assert (local["district_code"] == local["parent_district"]).all()
    # No cycles: walking up from every institution ends within a few steps.
    parent_of = dict(zip(directory["institution_id"], directory["parent_id"], strict=True))
    for start in directory["institution_id"]:
        seen, node = set(), start
        while node is not None:
            assert node not in seen
            seen.add(node)
            node = parent_of[node]
        assert len(seen) <= 4


def test_directory_merged_and_dissolved(directory: pl.DataFrame) -> None:
    merged = directory.filter(pl.col("status") == "merged")
    assert merged.height > 0
    assert merged["merged_into_id"].null_count() == 0
    active = set(directory.filter(pl.col("status") == "active")["institution_id"])
    assert set(merged["merged_into_id"]) <= active
    assert directory.filter(pl.col("status") != "merged")["merged_into_id"].null_count() == (
        directory.height - merged.height
    )
    # Parents stay active.
    assert set(directory["parent_id"].drop_nulls()) <= active


def test_directory_too_small() -> None:
    with pytest.raises(ValueError, match="at least"):
        make_directory(20, 1)
