"""The directory store: snapshots, versions, as-of queries, scope of a year, history."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from pathlib import Path

import polars as pl
import pytest

from energy_audit.directory import history as history_module
from energy_audit.directory.codes import make_credit_codes
from energy_audit.directory.diff import diff_directories
from energy_audit.directory.history import DirectoryStore, SnapshotInfo
from energy_audit.errors import UnusableInputError
from energy_audit.synthetic import DIRECTORY_COLUMNS, make_directory

D = dt.date
S1, S2, S3, S4 = D(2023, 6, 30), D(2023, 12, 31), D(2024, 6, 30), D(2025, 3, 31)


def edit(frame: pl.DataFrame, institution_id: str, /, **values: object) -> pl.DataFrame:
    hit = pl.col("institution_id") == institution_id
    return frame.with_columns(
        pl.when(hit).then(pl.lit(v, dtype=frame.schema[c])).otherwise(pl.col(c)).alias(c)
        for c, v in values.items()
    )


def row(frame: pl.DataFrame, institution_id: str) -> dict:
    hit = frame.filter(pl.col("institution_id") == institution_id)
    assert hit.height == 1
    return hit.row(0, named=True)


@pytest.fixture(scope="module")
def base() -> pl.DataFrame:
    return make_directory(200, seed=11)


@pytest.fixture(scope="module")
def ids(base: pl.DataFrame) -> dict[str, str]:
    """Institutions with a role in the story; N is new in 2025."""
    active = base.filter((pl.col("status") == "active") & pl.col("parent_id").is_not_null())
    roles = ["P", "D", "R", "G", "M"]
    out = dict(zip(roles, active["institution_id"].tail(len(roles)).to_list(), strict=True))
    out["N"] = str(make_credit_codes("12", "120101", "90000001")[0])
    assert out["N"] not in set(base["institution_id"])
    return out


@pytest.fixture(scope="module")
def snapshots(base: pl.DataFrame, ids: dict[str, str]) -> dict[dt.date, pl.DataFrame]:
    """Four quarterly snapshots.

    P dissolved as of 2023-12-31 and left out of the 2025 file; D dissolved as of 2024-06-30;
    R renamed twice then moved to another district; G absent from the 2023-12-31 file only;
    N added and M merged into R as of 2025-03-31.
    """
    s1 = base.with_columns(
        pl.lit("名录库2023Q2.xlsx").alias("source_file"),
        pl.int_range(pl.len()).alias("source_row"),
    )
    s2 = edit(s1, ids["P"], status="dissolved")
    s2 = edit(s2, ids["R"], name="天津市第一次更名中心")
    s2 = s2.filter(pl.col("institution_id") != ids["G"])
    s3 = pl.concat([s2, s1.filter(pl.col("institution_id") == ids["G"])], how="vertical")
    s3 = edit(s3, ids["D"], status="dissolved")
    s3 = edit(s3, ids["R"], name="天津市第二次更名中心")
    new = s3.filter(pl.col("institution_id") == ids["D"]).with_columns(
        pl.lit(ids["N"]).alias("institution_id"),
        pl.lit("天津市新设服务中心").alias("name"),
        pl.lit("active").alias("status"),
    )
    s4 = pl.concat([s3.filter(pl.col("institution_id") != ids["P"]), new], how="vertical")
    s4 = edit(s4, ids["R"], district_code="120116")
    s4 = edit(s4, ids["M"], status="merged", merged_into_id=ids["R"])
    return {S1: s1, S2: s2, S3: s3, S4: s4}


@pytest.fixture
def store(tmp_path: Path, snapshots: dict[dt.date, pl.DataFrame]) -> DirectoryStore:
    store = DirectoryStore.create(tmp_path / "store")
    for as_of, frame in snapshots.items():
        store.add(frame, as_of, source_file=f"{as_of}.xlsx")
    return store


# ------------------------------------------------------------------------- storing, reopening


def test_create_add_and_reopen(tmp_path: Path, snapshots: dict[dt.date, pl.DataFrame]) -> None:
    path = tmp_path / "store"
    store = DirectoryStore.create(path)
    assert store.latest() is None
    assert store.snapshots().is_empty()
    info = store.add(
        snapshots[S1],
        S1,
        source_file="名录库2023Q2.xlsx",
        source_sha256="ab" * 32,
        findings_summary={"error": 0, "warning": 2},
    )
    assert isinstance(info, SnapshotInfo)
    assert info.rows == snapshots[S1].height
    assert (path / info.file).is_file()

    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "energy_audit.directory_store"
    assert manifest["format_version"] == 1
    (entry,) = manifest["snapshots"]
    assert entry["as_of"] == "2023-06-30"
    assert entry["file"] == "snapshots/directory_2023-06-30.parquet"
    assert entry["source_file"] == "名录库2023Q2.xlsx"
    assert entry["findings_summary"] == {"error": 0, "warning": 2}
    assert entry["accepted_with_errors"] is False

    reopened = DirectoryStore(path)
    listed = reopened.snapshots()
    assert listed.columns[:7] == [
        "as_of",
        "file",
        "rows",
        "sha256",
        "stored_at",
        "accepted_with_errors",
        "reason",
    ]
    assert listed.row(0, named=True)["as_of"] == S1
    assert listed.row(0, named=True)["sha256"] == info.sha256
    stored = reopened.snapshot(S1)
    # canonical columns only: provenance dropped, personal data kept
    assert stored.columns == list(DIRECTORY_COLUMNS)
    assert stored.equals(snapshots[S1].select(DIRECTORY_COLUMNS))
    assert stored["contact_phone"].null_count() < stored.height
    assert reopened.latest().equals(stored)
    assert "1 snapshots" in repr(reopened)


def test_accepted_with_errors_is_recorded(tmp_path: Path, base: pl.DataFrame) -> None:
    store = DirectoryStore.create(tmp_path / "store")
    with pytest.raises(ValueError, match="needs a reason"):
        store.add(base, S1, accepted_with_errors=True)
    store.add(base, S1, accepted_with_errors=True, reason="区里确认编码待更正")
    row_ = DirectoryStore(tmp_path / "store").snapshots().row(0, named=True)
    assert row_["accepted_with_errors"] is True
    assert row_["reason"] == "区里确认编码待更正"


def test_out_of_order_snapshot_refused_and_store_unchanged(
    tmp_path: Path, base: pl.DataFrame
) -> None:
    path = tmp_path / "store"
    store = DirectoryStore.create(path)
    store.add(base, S2)
    manifest = (path / "manifest.json").read_bytes()
    files = sorted(p.name for p in (path / "snapshots").iterdir())
    as_of = D(2023, 1, 1)
    with pytest.raises(UnusableInputError, match=rf"无法添加 {as_of} 的快照.*2023-12-31") as e:
        store.add(base, as_of)
    assert re.search(rf"as of {as_of}.*latest.*as of 2023-12-31", e.value.message("en"))
    changed = base.with_columns(pl.lit("天津市某中心").alias("name"))
    with pytest.raises(UnusableInputError, match=r"2023-12-31 的快照已存储，且内容与本次不同") as e:
        store.add(changed, S2)
    assert "a different snapshot as of 2023-12-31 is already stored" in e.value.message("en")
    assert (path / "manifest.json").read_bytes() == manifest
    assert sorted(p.name for p in (path / "snapshots").iterdir()) == files
    assert DirectoryStore(path).snapshots().height == 1


def test_the_same_snapshot_again_is_harmless(tmp_path: Path, base: pl.DataFrame) -> None:
    """A notebook cell that creates the store and adds a snapshot can be run twice."""
    path = tmp_path / "store"
    first = DirectoryStore.create(path, exist_ok=True).add(base, S2, source_file="a.xlsx")
    manifest = (path / "manifest.json").read_bytes()
    again = DirectoryStore.create(path, exist_ok=True).add(base, S2, source_file="a.xlsx")
    assert again == first
    assert (path / "manifest.json").read_bytes() == manifest
    assert DirectoryStore(path).snapshots().height == 1


def test_crash_before_manifest_leaves_store_unchanged(
    tmp_path: Path, base: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store"
    store = DirectoryStore.create(path)
    store.add(base, S1)
    manifest = (path / "manifest.json").read_bytes()
    real_write = history_module._write_atomic

    def crash_on_manifest(target: Path, data: bytes) -> None:
        if target.name == "manifest.json":
            raise OSError("disk full")
        real_write(target, data)

    monkeypatch.setattr(history_module, "_write_atomic", crash_on_manifest)
    with pytest.raises(OSError, match="disk full"):
        store.add(edit(base, base["institution_id"][0], name="改"), S2)
    assert (path / "manifest.json").read_bytes() == manifest
    assert DirectoryStore(path).snapshots()["as_of"].to_list() == [S1]
    assert DirectoryStore(path).as_of(S2).height == base.height
    monkeypatch.undo()
    store.add(base, S2)  # the orphan file is simply replaced
    assert DirectoryStore(path).snapshots()["as_of"].to_list() == [S1, S2]


def test_rows_without_id_and_bad_arguments_refused(tmp_path: Path, base: pl.DataFrame) -> None:
    store = DirectoryStore.create(tmp_path / "store")
    blank = edit(base, base["institution_id"][3], institution_id=None)
    with pytest.raises(UnusableInputError, match=r"1 row.*without an institution_id.*rows 4"):
        store.add(blank, S1)
    with pytest.raises(UnusableInputError, match=r"缺少必填列：单位名称（name）"):
        store.add(base.drop("name"), S1)
    with pytest.raises(UnusableInputError, match="no rows"):
        store.add(base.clear(), S1)
    with pytest.raises(TypeError, match=r"datetime\.date"):
        store.add(base, dt.datetime(2023, 6, 30))  # type: ignore[arg-type]
    assert store.snapshots().is_empty()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "corrupt manifest, not readable JSON"),
        ('{"format": "something else", "snapshots": []}', "corrupt manifest: 'format'"),
        (
            '{"format": "energy_audit.directory_store", "format_version": 1, "snapshots": {}}',
            "corrupt manifest: 'snapshots' is not a list",
        ),
        (
            '{"format": "energy_audit.directory_store", "format_version": 1, '
            '"snapshots": [{"as_of": "2024-13-01"}]}',
            "corrupt manifest, snapshot 1: the snapshot entry lacks 'file'",
        ),
        (
            '{"format": "energy_audit.directory_store", "format_version": 9, "snapshots": []}',
            "format_version 9, newer than",
        ),
    ],
)
def test_corrupt_manifest_gives_clear_error(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "store"
    DirectoryStore.create(path)
    (path / "manifest.json").write_text(text, encoding="utf-8")
    with pytest.raises(UnusableInputError) as e:
        DirectoryStore(path)
    assert match in e.value.message("en")
    assert str(path) in str(e.value)


def test_listed_file_missing_or_changed(store: DirectoryStore) -> None:
    info = store.snapshots().row(1, named=True)
    target = store.path / info["file"]
    target.write_bytes(target.read_bytes() + b"x")
    with pytest.raises(UnusableInputError, match="does not match the SHA-256"):
        DirectoryStore(store.path).snapshot(S2)
    target.unlink()
    with pytest.raises(UnusableInputError, match=r"存储已损坏：2023-12-31 的快照文件.*不存在") as e:
        DirectoryStore(store.path)
    assert re.search(r"corrupt store.*2023-12-31.*missing", e.value.message("en"))


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(UnusableInputError, match="不是名录库存储") as e:
        DirectoryStore(tmp_path)
    assert "not a directory store" in e.value.message("en")
    with pytest.raises(UnusableInputError, match="文件夹不存在") as e:
        DirectoryStore(tmp_path / "nowhere")
    assert "folder missing" in e.value.message("en")
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(UnusableInputError, match="文件夹不为空"):
        DirectoryStore.create(tmp_path)
    with pytest.raises(UnusableInputError, match="文件夹不为空") as e:
        DirectoryStore.create(tmp_path, exist_ok=True)  # not a store: exist_ok does not help
    assert "not empty" in e.value.message("en")
    with pytest.raises(UnusableInputError, match="这是一个文件"):
        DirectoryStore.create(tmp_path / "notes.txt")
    DirectoryStore.create(tmp_path / "s")
    with pytest.raises(UnusableInputError, match="此处已有名录库存储") as e:
        DirectoryStore.create(tmp_path / "s")
    assert "already exists" in e.value.message("en")
    assert DirectoryStore.create(tmp_path / "s", exist_ok=True).snapshots().is_empty()
    (tmp_path / "s" / "manifest.json").write_text("{", encoding="utf-8")
    with pytest.raises(UnusableInputError, match="存储清单已损坏"):
        DirectoryStore.create(tmp_path / "s", exist_ok=True)


def test_unknown_snapshot_date(store: DirectoryStore) -> None:
    with pytest.raises(KeyError, match="no snapshot as of 2024-01-01"):
        store.snapshot(D(2024, 1, 1))


# ---------------------------------------------------------------------------------- versions


def test_versions_of_unchanged_and_changed_institutions(
    store: DirectoryStore, base: pl.DataFrame, ids: dict[str, str]
) -> None:
    versions = store.versions()
    assert versions.columns == [*DIRECTORY_COLUMNS, "valid_from", "valid_to"]
    r = versions.filter(pl.col("institution_id") == ids["R"])
    assert r.select("valid_from", "valid_to").rows() == [(S1, S2), (S2, S3), (S3, S4), (S4, None)]
    p = versions.filter(pl.col("institution_id") == ids["P"])
    assert p.select("status", "valid_from", "valid_to").rows() == [
        ("active", S1, S2),
        ("dissolved", S2, S4),  # left out of the 2025 file: no longer in force from S4
    ]
    untouched = base.filter(~pl.col("institution_id").is_in(list(ids.values())))
    assert versions.filter(
        pl.col("institution_id").is_in(untouched["institution_id"].implode())
    ).select("valid_from", "valid_to").unique().rows() == [(S1, None)]


def test_version_boundaries_match_the_diff(
    store: DirectoryStore, snapshots: dict[dt.date, pl.DataFrame]
) -> None:
    """An institution starts or ends a version at a snapshot exactly when the diff lists it."""
    versions = store.versions()
    dates = list(snapshots)
    for before, after in itertools.pairwise(dates):
        changed = set(diff_directories(snapshots[before], snapshots[after])["institution_id"])
        boundary = set(
            versions.filter((pl.col("valid_from") == after) | (pl.col("valid_to") == after))[
                "institution_id"
            ]
        )
        assert boundary == changed


def test_as_of_on_boundary_dates(store: DirectoryStore, ids: dict[str, str]) -> None:
    on_day = store.as_of(S3)
    day_before = store.as_of(S3 - dt.timedelta(days=1))
    assert row(on_day, ids["R"])["name"] == "天津市第二次更名中心"
    assert row(day_before, ids["R"])["name"] == "天津市第一次更名中心"
    assert row(on_day, ids["D"])["status"] == "dissolved"
    assert row(day_before, ids["D"])["status"] == "active"
    assert ids["G"] not in set(day_before["institution_id"])  # absent from the S2 file
    assert ids["G"] in set(on_day["institution_id"])
    assert on_day["institution_id"].is_unique().all()


def test_as_of_first_and_after_last_snapshot(
    store: DirectoryStore, snapshots: dict[dt.date, pl.DataFrame]
) -> None:
    before = store.as_of(S1 - dt.timedelta(days=1))
    assert before.is_empty()
    assert before.schema == store.versions().schema
    assert store.as_of(S1).height == snapshots[S1].height
    latest = store.as_of(D(2030, 1, 1)).drop("valid_from", "valid_to").sort("institution_id")
    assert latest.equals(snapshots[S4].select(DIRECTORY_COLUMNS).sort("institution_id"))


def test_duplicate_id_in_a_snapshot_uses_first_row(tmp_path: Path, base: pl.DataFrame) -> None:
    first = base["institution_id"][0]
    twice = pl.concat([base, base.head(1).with_columns(pl.lit("第二行").alias("name"))])
    store = DirectoryStore.create(tmp_path / "store")
    store.add(twice, S1)
    assert store.snapshot(S1).height == base.height + 1  # stored as accepted
    assert row(store.as_of(S1), first)["name"] == base["name"][0]


def test_empty_store_queries(tmp_path: Path) -> None:
    store = DirectoryStore.create(tmp_path / "store")
    assert store.versions().is_empty()
    assert store.as_of(S1).is_empty()
    assert store.scope(2024).is_empty()
    assert store.history("11100000000013338W").is_empty()


# ------------------------------------------------------------------------------------ scope


def test_scope_of_a_year(
    store: DirectoryStore, snapshots: dict[dt.date, pl.DataFrame], ids: dict[str, str]
) -> None:
    scope = store.scope(2024)
    in_scope = set(scope["institution_id"])
    assert ids["D"] in in_scope  # dissolved mid-year: active until 2024-06-30
    assert ids["N"] not in in_scope  # added after the year
    assert ids["P"] not in in_scope  # dissolved before the year
    # in force during 2024: the S2 snapshot until S3, then S3; active in either
    expected = set(
        pl.concat([snapshots[S2], snapshots[S3]]).filter(pl.col("status") == "active")[
            "institution_id"
        ]
    )
    assert in_scope == expected
    assert scope["institution_id"].is_unique().all()

    d = row(scope, ids["D"])
    assert d["status"] == "dissolved"  # its latest version within 2024
    assert (d["active_from"], d["active_to"], d["active_days"]) == (D(2024, 1, 1), S3, 181)
    g = row(scope, ids["G"])  # absent from the file in force until 2024-06-30
    assert (g["active_from"], g["active_to"], g["active_days"]) == (S3, D(2025, 1, 1), 185)
    r = row(scope, ids["R"])
    assert r["name"] == "天津市第二次更名中心"
    assert (r["active_from"], r["active_to"], r["active_days"]) == (
        D(2024, 1, 1),
        D(2025, 1, 1),
        366,
    )


def test_scope_before_and_across_first_snapshot(store: DirectoryStore, ids: dict[str, str]) -> None:
    assert store.scope(2022).is_empty()
    scope = store.scope(2023)
    p = row(scope, ids["P"])  # active until its dissolution on 2023-12-31
    assert (p["active_from"], p["active_to"], p["active_days"]) == (S1, S2, 184)
    assert p["status"] == "dissolved"
    assert ids["N"] not in set(store.scope(2024)["institution_id"])
    assert ids["N"] in set(store.scope(2025)["institution_id"])


# ---------------------------------------------------------------------------------- history


def test_history_across_renames(
    store: DirectoryStore, base: pl.DataFrame, ids: dict[str, str]
) -> None:
    h = store.history(ids["R"].lower())  # the id is normalised first
    assert h.columns[:5] == ["version", "valid_from", "valid_to", "changes", "changed_fields"]
    assert h.select("version", "valid_from", "valid_to").rows() == [
        (1, S1, S2),
        (2, S2, S3),
        (3, S3, S4),
        (4, S4, None),
    ]
    assert h["name"].to_list() == [
        row(base, ids["R"])["name"],
        "天津市第一次更名中心",
        "天津市第二次更名中心",
        "天津市第二次更名中心",
    ]
    assert h["changes"].to_list() == [["added"], ["renamed"], ["renamed"], ["changed"]]
    assert h["changed_fields"].to_list() == [[], ["name"], ["name"], ["district_code"]]


def test_history_of_dissolution_and_gap(store: DirectoryStore, ids: dict[str, str]) -> None:
    d = store.history(ids["D"])
    assert d["changes"].to_list() == [["added"], ["dissolved"]]
    assert d["changed_fields"].to_list() == [[], ["status"]]
    g = store.history(ids["G"])
    assert g.select("valid_from", "valid_to").rows() == [(S1, S2), (S3, None)]
    assert g["changes"].to_list() == [["added"], ["added"]]  # back after a gap, same content
    assert g["changed_fields"].to_list() == [[], []]
    assert store.history("11100000000013338W").is_empty()
    assert store.history("").is_empty()


@pytest.mark.parametrize(
    "typed",
    [
        lambda code: code.lower(),
        lambda code: f" {code[:4]} {code[4:10]}-{code[10:]} ",
        lambda code: code.translate({i: i + 0xFEE0 for i in range(0x21, 0x7F)}),  # full width
        lambda code: f"{code[:8]}\u3000{code[8:].lower()}\t",
    ],
)
def test_history_normalises_the_id_as_the_reader_does(
    store: DirectoryStore, ids: dict[str, str], typed
) -> None:
    assert store.history(typed(ids["R"])).equals(store.history(ids["R"]))
    assert store.history(ids["R"]).height == 4


def test_history_of_a_merger(store: DirectoryStore, ids: dict[str, str]) -> None:
    m = store.history(ids["M"])
    assert m["changes"].to_list() == [["added"], ["merged"]]
    assert m["changed_fields"].to_list() == [[], ["status", "merged_into_id"]]
    assert m.select("status", "merged_into_id").rows() == [("active", None), ("merged", ids["R"])]
    assert ids["M"] in set(store.scope(2024)["institution_id"])
    assert ids["M"] not in set(store.scope(2026)["institution_id"])
