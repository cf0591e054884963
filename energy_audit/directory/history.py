"""The directory store (名录库历史): every accepted snapshot, and the versions they imply.

The city office accepts a directory snapshot every quarter. :class:`DirectoryStore` keeps each
accepted snapshot as it was accepted and answers the questions later stages ask: which version
of an institution was in force on a date, who is in the reporting scope of year Y (active at
any time in Y), and how one institution changed over time.

Store format (``format_version`` 1)
-----------------------------------
A folder::

    STORE/
        manifest.json
        snapshots/directory_2024-03-31.parquet
        snapshots/directory_2024-06-30.parquet
        …

Each Parquet file holds one snapshot: the directory columns of the data contract (§1) in
contract order and dtypes, personal data (contact name and phone) included, provenance columns
(``source_file``, ``source_sheet``, ``source_row``) dropped. ``manifest.json`` (UTF-8) lists the
snapshots in date order (the ``#`` comments explain; they are not in the file)::

    {
      "format": "energy_audit.directory_store",
      "format_version": 1,
      "created_at": "2025-01-02T08:00:00+00:00",
      "snapshots": [
        {
          "as_of": "2024-03-31",                      # ISO 8601 date the snapshot is as of
          "file": "snapshots/directory_2024-03-31.parquet",  # relative to the store folder
          "rows": 10000,                              # rows in the file [rows]
          "sha256": "…",                              # SHA-256 of the Parquet file (hex)
          "stored_at": "2025-01-02T08:00:00.123456+00:00",   # when it was stored (UTC)
          "source_file": "名录库2024Q1.xlsx",          # the file it was read from, or null
          "source_sha256": "…",                       # SHA-256 of that file, or null
          "accepted_with_errors": false,              # stored although checks found errors
          "reason": null,                             # why, when accepted with errors
          "findings_summary": {"error": 0, "warning": 3}   # free JSON object, or null
        }
      ]
    }

Only the snapshots listed in the manifest exist for the store. Every file is written under a
temporary name and renamed into place (atomic on one file system); the snapshot file first, the
manifest last. A crash therefore leaves either the old manifest (and perhaps an unlisted
snapshot file, overwritten by the next attempt) or the new one, never a listed half-written
snapshot. The SHA-256 of each file is checked when it is read. The store assumes one writer at
a time (the quarterly run); readers may run at any time.

Versions
--------
A snapshot as of date D is the directory in force from D until the next snapshot. A *version* of
an institution is a maximal run of consecutive snapshots in which its row has the same content
(compared as :func:`energy_audit.directory.diff.normalize_directory` does: surrounding spaces
ignored, empty text = null). It is valid from the first snapshot's date (inclusive) to the date
of the first later snapshot where the row differs or is absent (exclusive, null while current).
Before the first snapshot the store knows nothing: queries for such dates return no rows. An
``institution_id`` listed twice in one snapshot is taken by its first row there (the directory
checks report the duplicate).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from energy_audit import contract
from energy_audit.directory.diff import (
    CHANGE_KINDS,
    COMPARED_FIELDS,
    comparison_exprs,
    diff_normalized,
    normalize_directory,
)
from energy_audit.errors import UnusableInputError
from energy_audit.io.cells import credit_code

__all__ = ["STORE_FORMAT", "STORE_FORMAT_VERSION", "DirectoryStore", "SnapshotInfo"]

#: Value of the manifest's ``format`` key.
STORE_FORMAT: Final = "energy_audit.directory_store"
#: Manifest format version written (and the highest one read) by this code.
STORE_FORMAT_VERSION: Final = 1

_MANIFEST: Final = "manifest.json"
_SNAPSHOT_DIR: Final = "snapshots"
_DIRECTORY: Final = contract.table("directory")
_ID: Final = "institution_id"
_ACTIVE: Final = "active"
_NORM: Final = "~"  # prefix of the normalised copy of a field while computing versions

_SNAPSHOTS_SCHEMA: Final = pl.Schema(
    {
        "as_of": pl.Date(),
        "file": pl.String(),
        "rows": pl.Int64(),
        "sha256": pl.String(),
        "stored_at": pl.Datetime("us", "UTC"),
        "accepted_with_errors": pl.Boolean(),
        "reason": pl.String(),
        "source_file": pl.String(),
        "source_sha256": pl.String(),
        "findings_summary": pl.String(),
    }
)
_VERSIONS_SCHEMA: Final = pl.Schema(
    {**_DIRECTORY.polars_schema, "valid_from": pl.Date(), "valid_to": pl.Date()}
)
_SCOPE_SCHEMA: Final = pl.Schema(
    {
        **_VERSIONS_SCHEMA,
        "active_from": pl.Date(),
        "active_to": pl.Date(),
        "active_days": pl.Int64(),
    }
)
_HISTORY_SCHEMA: Final = pl.Schema(
    {
        "version": pl.Int64(),
        "valid_from": pl.Date(),
        "valid_to": pl.Date(),
        "changes": pl.List(pl.String()),
        "changed_fields": pl.List(pl.String()),
        **_DIRECTORY.polars_schema,
    }
)


@dataclass(frozen=True)
class SnapshotInfo:
    """One stored snapshot, as listed in the store's manifest.

    Attributes
    ----------
    as_of : datetime.date
        The date the snapshot is as of: it is in force from this day until the next snapshot.
    file : str
        Parquet file, relative to the store folder (``snapshots/directory_YYYY-MM-DD.parquet``).
    rows : int
        Rows in the snapshot [rows].
    sha256 : str
        SHA-256 (hex) of the Parquet file, checked on every read.
    stored_at : datetime.datetime
        When the snapshot was stored (UTC).
    source_file : str or None
        The file the snapshot was read from, as the caller named it.
    source_sha256 : str or None
        SHA-256 (hex) of that file.
    accepted_with_errors : bool
        Stored although the directory checks found ``error`` findings.
    reason : str or None
        Why it was accepted with errors.
    findings_summary : dict or None
        Free JSON object describing the checks' findings (e.g. counts per severity).
    """

    as_of: dt.date
    file: str
    rows: int
    sha256: str
    stored_at: dt.datetime
    source_file: str | None = None
    source_sha256: str | None = None
    accepted_with_errors: bool = False
    reason: str | None = None
    findings_summary: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the manifest entry (dates in ISO 8601)."""
        entry = asdict(self)
        entry["as_of"] = self.as_of.isoformat()
        entry["stored_at"] = self.stored_at.isoformat()
        return entry

    @classmethod
    def from_json(cls, entry: Mapping[str, Any], where: str) -> SnapshotInfo:
        """Read a manifest entry; ``where`` names it in error messages.

        Raises
        ------
        UnusableInputError
            If a key is missing or has the wrong type.
        """
        if not isinstance(entry, Mapping):
            raise UnusableInputError(f"{where}: a snapshot entry must be an object")
        expected: dict[str, tuple[type, ...]] = {
            "as_of": (str,),
            "file": (str,),
            "rows": (int,),
            "sha256": (str,),
            "stored_at": (str,),
            "source_file": (str, type(None)),
            "source_sha256": (str, type(None)),
            "accepted_with_errors": (bool,),
            "reason": (str, type(None)),
            "findings_summary": (dict, type(None)),
        }
        for key, types in expected.items():
            if key not in entry:
                raise UnusableInputError(f"{where}: the snapshot entry lacks {key!r}")
            if not isinstance(entry[key], types) or (
                key == "rows" and isinstance(entry[key], bool)
            ):
                raise UnusableInputError(
                    f"{where}: {key!r} is {entry[key]!r}, expected "
                    + " or ".join("null" if t is type(None) else t.__name__ for t in types)
                )
        try:
            as_of = dt.date.fromisoformat(entry["as_of"])
            stored_at = dt.datetime.fromisoformat(entry["stored_at"])
        except ValueError as exc:
            raise UnusableInputError(f"{where}: {exc}") from exc
        file = entry["file"]
        if Path(file).is_absolute() or ".." in Path(file).parts:
            raise UnusableInputError(f"{where}: file {file!r} must be inside the store folder")
        return cls(
            as_of=as_of,
            file=file,
            rows=entry["rows"],
            sha256=entry["sha256"],
            stored_at=stored_at,
            source_file=entry["source_file"],
            source_sha256=entry["source_sha256"],
            accepted_with_errors=entry["accepted_with_errors"],
            reason=entry["reason"],
            findings_summary=entry["findings_summary"],
        )


class DirectoryStore:
    """A folder of directory snapshots with a manifest: the history of the 名录库.

    Open an existing store with ``DirectoryStore(path)``; make a new one with
    :meth:`DirectoryStore.create`. The format is described in the module documentation.

    Parameters
    ----------
    path : str or Path
        The store folder.

    Raises
    ------
    UnusableInputError
        If the folder does not exist, is not a store (no ``manifest.json``) or its manifest is
        corrupt (not JSON, wrong format, dates out of order, a listed file missing).

    Examples
    --------
    >>> import datetime as dt, tempfile
    >>> from energy_audit.synthetic import make_directory
    >>> store = DirectoryStore.create(Path(tempfile.mkdtemp()) / "store")
    >>> info = store.add(make_directory(200, seed=1), dt.date(2024, 3, 31))
    >>> store.as_of(dt.date(2024, 5, 1)).height
    200
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._frames: dict[str, pl.DataFrame] = {}  # snapshots read, by sha256
        self._versions: tuple[tuple[tuple[str, str], ...], pl.DataFrame] | None = None
        self._manifest()  # fail now if the folder is not a usable store

    def __repr__(self) -> str:
        infos = self._infos()
        span = f", {infos[0].as_of} … {infos[-1].as_of}" if infos else ""
        return f"DirectoryStore({str(self.path)!r}: {len(infos)} snapshots{span})"

    # ------------------------------------------------------------------------ creation, manifest

    @classmethod
    def create(cls, path: str | Path, *, exist_ok: bool = False) -> DirectoryStore:
        """Create an empty store (or, with ``exist_ok``, open the store already there).

        Parameters
        ----------
        path : str or Path
            Folder to create (parents included); it may exist if it is empty.
        exist_ok : bool, default False
            If ``path`` already holds a valid store, open and return it unchanged instead of
            raising (so a notebook cell that creates the store can be run again).

        Returns
        -------
        DirectoryStore
            The new, empty store (or the existing one, with ``exist_ok``).

        Raises
        ------
        UnusableInputError
            If ``path`` is a file, a folder that is not empty and not a store, already a store
            (unless ``exist_ok``), or a corrupt store.
        """
        path = Path(path)
        if path.exists():
            if not path.is_dir():
                raise UnusableInputError(
                    f"{path}：无法建立名录库存储：这是一个文件",
                    f"{path}: cannot create a directory store: it is a file",
                )
            if (path / _MANIFEST).exists():
                if exist_ok:
                    return cls(path)
                raise UnusableInputError(
                    f"{path}：此处已有名录库存储；请用 DirectoryStore(path) 打开，"
                    "或用 DirectoryStore.create(path, exist_ok=True)",
                    f"{path}: a directory store already exists there; open it with "
                    "DirectoryStore(path) or DirectoryStore.create(path, exist_ok=True)",
                )
            if any(path.iterdir()):
                raise UnusableInputError(
                    f"{path}：文件夹不为空，无法在此建立名录库存储",
                    f"{path}: cannot create a directory store in a folder that is not empty",
                )
        (path / _SNAPSHOT_DIR).mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": STORE_FORMAT,
            "format_version": STORE_FORMAT_VERSION,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "snapshots": [],
        }
        _write_atomic(path / _MANIFEST, _manifest_bytes(manifest))
        return cls(path)

    def _manifest(self) -> dict[str, Any]:
        """Read and check the manifest."""
        if not self.path.is_dir():
            raise UnusableInputError(
                f"{self.path}：没有这个名录库存储（文件夹不存在）",
                f"{self.path}: no such directory store (folder missing)",
            )
        where = self.path / _MANIFEST
        if not where.is_file():
            raise UnusableInputError(
                f"{self.path}：不是名录库存储（没有 {_MANIFEST}）；"
                "可用 DirectoryStore.create(path) 建立",
                f"{self.path}: not a directory store (no {_MANIFEST}); create one with "
                "DirectoryStore.create(path)",
            )
        try:
            manifest = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UnusableInputError(
                f"{where}：存储清单已损坏，不是可读的 JSON：{exc}",
                f"{where}: corrupt manifest, not readable JSON: {exc}",
            ) from exc
        if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
            raise UnusableInputError(
                f"{where}：存储清单已损坏：“format”不是 {STORE_FORMAT}",
                f"{where}: corrupt manifest: 'format' is not {STORE_FORMAT!r}",
            )
        version = manifest.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise UnusableInputError(
                f"{where}：存储清单已损坏：format_version 无效（{version!r}）",
                f"{where}: corrupt manifest: bad format_version {version!r}",
            )
        if version > STORE_FORMAT_VERSION:
            raise UnusableInputError(
                f"{where}：存储的 format_version 为 {version}，比本版 energy_audit 能读取的"
                f"（{STORE_FORMAT_VERSION}）新；请升级 energy_audit",
                f"{where}: the store has format_version {version}, newer than this energy_audit "
                f"reads ({STORE_FORMAT_VERSION}); upgrade energy_audit",
            )
        entries = manifest.get("snapshots")
        if not isinstance(entries, list):
            raise UnusableInputError(
                f"{where}：存储清单已损坏：“snapshots”不是列表",
                f"{where}: corrupt manifest: 'snapshots' is not a list",
            )
        infos = [
            SnapshotInfo.from_json(e, f"{where}: corrupt manifest, snapshot {i + 1}")
            for i, e in enumerate(entries)
        ]
        for before, after in itertools.pairwise(infos):
            if after.as_of <= before.as_of:
                raise UnusableInputError(
                    f"{where}：存储清单已损坏：{after.as_of} 的快照列在 {before.as_of} 的之后",
                    f"{where}: corrupt manifest: snapshot as of {after.as_of} is listed after "
                    f"the one as of {before.as_of}",
                )
        for info in infos:
            if not (self.path / info.file).is_file():
                raise UnusableInputError(
                    f"{where}：存储已损坏：{info.as_of} 的快照文件 {info.file} 不存在",
                    f"{where}: corrupt store: the snapshot as of {info.as_of} lists "
                    f"{info.file}, which is missing",
                )
        manifest["snapshots"] = infos
        return manifest

    def _infos(self) -> list[SnapshotInfo]:
        return list(self._manifest()["snapshots"])

    # ------------------------------------------------------------------------------- writing

    def add(
        self,
        directory: pl.DataFrame | pl.LazyFrame,
        as_of: dt.date,
        *,
        source_file: str | None = None,
        source_sha256: str | None = None,
        accepted_with_errors: bool = False,
        reason: str | None = None,
        findings_summary: Mapping[str, Any] | None = None,
    ) -> SnapshotInfo:
        """Store an accepted directory snapshot.

        Deciding whether a snapshot may be stored (its check findings) is the caller's job;
        the store records the decision.

        Parameters
        ----------
        directory : polars.DataFrame or polars.LazyFrame
            A canonical directory table (data contract §1), e.g. ``read_directory(f).data``.
            Contract columns are stored in contract order and dtypes, contact fields included;
            other columns (provenance) are dropped; an absent optional column takes its contract
            default (``status``: ``active``) or null.
        as_of : datetime.date
            The date the snapshot is as of; later than every stored snapshot's (or the latest
            one's date with the same content: nothing is stored again).
        source_file : str, optional
            The file it was read from (recorded in the manifest).
        source_sha256 : str, optional
            SHA-256 (hex) of that file.
        accepted_with_errors : bool, default False
            The snapshot is stored although the checks found ``error`` findings; needs
            ``reason``.
        reason : str, optional
            Why it was accepted with errors.
        findings_summary : Mapping, optional
            JSON-serialisable summary of the checks' findings (e.g. ``{"error": 0, …}``).

        Returns
        -------
        SnapshotInfo
            The manifest entry written.

        Raises
        ------
        UnusableInputError
            If ``as_of`` is before the latest stored snapshot's date (the message names both
            dates) or equal to it with other content (the same snapshot again returns its
            entry and changes nothing), the table has no rows, lacks a required column, has
            rows without an ``institution_id`` or a column that cannot take its contract
            dtype. The store is then unchanged.
        TypeError
            If ``as_of`` is not a ``datetime.date`` (a ``datetime`` is refused too) or
            ``findings_summary`` is not JSON-serialisable.
        ValueError
            If ``accepted_with_errors`` is set without a ``reason``.
        """
        if not isinstance(as_of, dt.date) or isinstance(as_of, dt.datetime):
            raise TypeError(f"as_of must be a datetime.date, got {as_of!r}")
        if accepted_with_errors and not (reason and reason.strip()):
            raise ValueError("a snapshot accepted with errors needs a reason")
        summary = None if findings_summary is None else dict(findings_summary)
        json.dumps(summary, ensure_ascii=False)  # TypeError now rather than after writing
        manifest = self._manifest()
        infos: list[SnapshotInfo] = manifest["snapshots"]
        if infos and as_of < infos[-1].as_of:
            raise UnusableInputError(
                f"{self.path}：无法添加 {as_of} 的快照：已存储的最新快照是 {infos[-1].as_of} 的；"
                "快照按日期顺序添加，每个须晚于最新一个",
                f"{self.path}: cannot add the snapshot as of {as_of}: the latest stored snapshot "
                f"is as of {infos[-1].as_of}; snapshots are added in date order, each after the "
                "last",
            )
        frame = _canonical(
            directory.collect() if isinstance(directory, pl.LazyFrame) else directory
        )
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        data = buffer.getvalue()
        if infos and as_of == infos[-1].as_of:
            if hashlib.sha256(data).hexdigest() == infos[-1].sha256:
                return infos[-1]  # the same snapshot again (a re-run cell): nothing to do
            raise UnusableInputError(
                f"{self.path}：{as_of} 的快照已存储，且内容与本次不同；快照按日期顺序添加，"
                "每个须晚于最新一个",
                f"{self.path}: a different snapshot as of {as_of} is already stored; snapshots "
                "are added in date order, each after the last",
            )
        file = f"{_SNAPSHOT_DIR}/directory_{as_of.isoformat()}.parquet"
        (self.path / _SNAPSHOT_DIR).mkdir(exist_ok=True)
        _write_atomic(self.path / file, data)
        info = SnapshotInfo(
            as_of=as_of,
            file=file,
            rows=frame.height,
            sha256=hashlib.sha256(data).hexdigest(),
            stored_at=dt.datetime.now(dt.UTC),
            source_file=source_file,
            source_sha256=source_sha256,
            accepted_with_errors=accepted_with_errors,
            reason=reason,
            findings_summary=summary,
        )
        manifest["snapshots"] = [i.to_json() for i in [*infos, info]]
        _write_atomic(self.path / _MANIFEST, _manifest_bytes(manifest))
        return info

    # ------------------------------------------------------------------------------- reading

    def snapshots(self) -> pl.DataFrame:
        """List the stored snapshots, oldest first.

        Returns
        -------
        polars.DataFrame
            ``as_of`` (date), ``file``, ``rows``, ``sha256``, ``stored_at`` (UTC),
            ``accepted_with_errors``, ``reason``, ``source_file``, ``source_sha256``,
            ``findings_summary`` (JSON text).
        """
        rows = [
            {
                **{k: getattr(i, k) for k in _SNAPSHOTS_SCHEMA.names() if hasattr(i, k)},
                "findings_summary": None
                if i.findings_summary is None
                else json.dumps(i.findings_summary, ensure_ascii=False, sort_keys=True),
            }
            for i in self._infos()
        ]
        return pl.DataFrame(rows, schema=_SNAPSHOTS_SCHEMA)

    def snapshot(self, as_of: dt.date) -> pl.DataFrame:
        """Return the snapshot stored as of exactly ``as_of``, as stored.

        Parameters
        ----------
        as_of : datetime.date
            A stored snapshot's date (see :meth:`snapshots`).

        Returns
        -------
        polars.DataFrame
            The directory columns of the contract, rows in the order they were stored.

        Raises
        ------
        KeyError
            If no snapshot is stored as of that date (the message lists the stored dates).
        UnusableInputError
            If the file no longer matches its SHA-256.
        """
        infos = self._infos()
        for info in infos:
            if info.as_of == as_of:
                return self._read(info)
        dates = ", ".join(str(i.as_of) for i in infos) or "none"
        raise KeyError(f"no snapshot as of {as_of} in {self.path}; stored: {dates}")

    def latest(self) -> pl.DataFrame | None:
        """Return the latest stored snapshot, or ``None`` if the store is empty."""
        infos = self._infos()
        return self._read(infos[-1]) if infos else None

    def _read(self, info: SnapshotInfo) -> pl.DataFrame:
        """Read a snapshot file, checked against its SHA-256 (cached by hash)."""
        cached = self._frames.get(info.sha256)
        if cached is not None:
            return cached
        path = self.path / info.file
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != info.sha256:
            raise UnusableInputError(
                f"{path}: the snapshot as of {info.as_of} does not match the SHA-256 in the "
                f"manifest ({digest} instead of {info.sha256}): the file was changed or damaged"
            )
        frame = pl.read_parquet(io.BytesIO(data)).select(_DIRECTORY.names)
        self._frames[info.sha256] = frame
        return frame

    # ------------------------------------------------------------------------------ versions

    def versions(self) -> pl.DataFrame:
        """Return every institution version with the dates it was valid.

        Returns
        -------
        polars.DataFrame
            The directory columns of the contract (values of the version's first snapshot;
            ``institution_id`` stripped of surrounding spaces), then ``valid_from`` (date,
            inclusive: the as-of date of the version's first snapshot) and ``valid_to`` (date,
            exclusive: the as-of date of the first later snapshot where the row differs or is
            absent; null while current). Sorted by ``institution_id`` and ``valid_from``.
        """
        infos = self._infos()
        key = tuple((i.as_of.isoformat(), i.sha256) for i in infos)
        if self._versions is not None and self._versions[0] == key:
            return self._versions[1]
        if not infos:
            return pl.DataFrame(schema=_VERSIONS_SCHEMA)
        names = _DIRECTORY.names
        # Per snapshot: normalised copies (prefixed) for comparing, the key itself normalised
        # in place, the first row of an id listed twice.
        norm = [e.name.prefix(_NORM) for e in comparison_exprs(names)]
        long = pl.concat(
            [
                self._read(info)
                .lazy()
                .with_columns(*norm, pl.lit(k, pl.Int32).alias("_k"))
                .with_columns(pl.col(_NORM + _ID).alias(_ID))
                .filter(pl.col(_ID).is_not_null() & pl.col(_ID).is_first_distinct())
                for k, info in enumerate(infos)
            ],
            how="vertical",
        ).sort(_ID, maintain_order=True)  # stable: snapshots stay in date order within an id
        same_as_previous = (
            (pl.col(_ID) == pl.col(_ID).shift(1))
            & (pl.col("_k") == pl.col("_k").shift(1) + 1)
            & pl.all_horizontal(
                pl.col(_NORM + f).eq_missing(pl.col(_NORM + f).shift(1)) for f in COMPARED_FIELDS
            )
        ).fill_null(False)
        long = long.with_columns(same_as_previous.alias("_same")).with_columns(
            # the run continues in the next row: this row is not the last of its version
            pl.col("_same").shift(-1, fill_value=False).alias("_continues")
        )
        dates = {k: info.as_of for k, info in enumerate(infos)}
        starts = long.filter(~pl.col("_same")).select(
            *names, pl.col("_k").replace_strict(dates, return_dtype=pl.Date).alias("valid_from")
        )
        ends = long.filter(~pl.col("_continues")).select(
            (pl.col("_k") + 1)
            .replace_strict(dates, default=None, return_dtype=pl.Date)
            .alias("valid_to")
        )
        # each version has one start row and one end row, both in (id, snapshot) order
        out = pl.concat([starts, ends], how="horizontal").collect()
        self._versions = (key, out)
        return out

    def as_of(self, date: dt.date) -> pl.DataFrame:
        """Return the directory in force on ``date``.

        Parameters
        ----------
        date : datetime.date
            Any day. A snapshot's own as-of day returns that snapshot's versions; the day
            before returns the previous ones.

        Returns
        -------
        polars.DataFrame
            The versions with ``valid_from ≤ date < valid_to`` (null ``valid_to``: open), with
            the columns of :meth:`versions`, one row per institution. Empty (same columns) before
            the first snapshot.
        """
        v = self.versions()
        return v.filter(
            (pl.col("valid_from") <= date)
            & (pl.col("valid_to").is_null() | (pl.col("valid_to") > date))
        )

    def scope(self, year: int) -> pl.DataFrame:
        """Return the reporting scope of ``year``: every institution active at any time in it.

        Parameters
        ----------
        year : int
            Reporting year Y (calendar year, 1 January to 31 December).

        Returns
        -------
        polars.DataFrame
            One row per institution having a version with status ``active`` (a blank status
            reads as ``active``, the contract default) valid on at least one day of Y. The row
            is the institution's latest version valid in Y (whatever its status: an institution
            dissolved in July shows its dissolved version), with the columns of
            :meth:`versions` and:

            - ``active_from`` (date): first day of Y on which it was active;
            - ``active_to`` (date, exclusive): the day after its last active day in Y
              (at most 1 January of Y + 1);
            - ``active_days`` [days]: days of Y on which it was active (a gap between two
              active periods is not counted).

            Sorted by ``institution_id``. The store knows nothing before its first snapshot:
            days of Y before it count as not active.
        """
        start = dt.date(year, 1, 1)
        end = dt.date(year + 1, 1, 1)
        v = self.versions()
        in_year = v.filter(
            (pl.col("valid_from") < end)
            & (pl.col("valid_to").is_null() | (pl.col("valid_to") > start))
        )
        # the status as the diff compares it: trimmed, a blank one reads as "active"
        status = next(
            e for e in comparison_exprs(_DIRECTORY.names) if e.meta.output_name() == "status"
        )
        active = (
            in_year.filter(status == _ACTIVE)
            .with_columns(
                pl.max_horizontal(pl.col("valid_from"), pl.lit(start)).alias("_a"),
                pl.min_horizontal(pl.col("valid_to").fill_null(end), pl.lit(end)).alias("_b"),
            )
            .group_by(_ID)
            .agg(
                pl.col("_a").min().alias("active_from"),
                pl.col("_b").max().alias("active_to"),
                (pl.col("_b") - pl.col("_a")).dt.total_days().sum().alias("active_days"),
            )
        )
        latest = in_year.filter(pl.col("valid_from") == pl.col("valid_from").max().over(_ID))
        out = latest.join(active, on=_ID, how="inner").sort(_ID)
        return out.select(_SCOPE_SCHEMA.names()).cast(dict(_SCOPE_SCHEMA))

    def history(self, institution_id: str) -> pl.DataFrame:
        """Return the versions of one institution in time order, with what changed.

        Parameters
        ----------
        institution_id : str
            Its unified social credit code, normalised first as the readers normalise a
            credit-code cell (:func:`energy_audit.io.cells.credit_code`: full width to half
            width, spaces and hyphens removed, upper case).

        Returns
        -------
        polars.DataFrame
            ``version`` (1, 2, …), ``valid_from``, ``valid_to`` (as in :meth:`versions`),
            ``changes`` (kinds of change from the previous version, as
            :func:`energy_audit.directory.diff.diff_directories` names them; ``added`` for the
            first version and for a version that starts after a gap in which the institution
            was absent), ``changed_fields`` (fields that differ from the previous version, in
            contract order), then the directory columns. Empty (same columns) if the store
            never held the institution.
        """
        code = pl.select(credit_code(pl.lit(institution_id, pl.String))).item()
        if code is None:  # a blank id names no institution
            return pl.DataFrame(schema=_HISTORY_SCHEMA)
        v = (
            self.versions()
            .filter(pl.col(_ID) == code)
            .sort("valid_from")
            .with_row_index("version", offset=1)
            .with_columns(pl.col("version").cast(pl.Int64))
        )
        if v.is_empty():
            return pl.DataFrame(schema=_HISTORY_SCHEMA)
        norm = normalize_directory(v).with_columns(v["version"])
        changes = diff_normalized(
            norm.slice(0, v.height - 1).with_columns(pl.col("version") + 1),
            norm.slice(1),
            key="version",
        )
        field_order = {f: i for i, f in enumerate(COMPARED_FIELDS)}
        kinds: dict[int, list[str]] = {}
        fields: dict[int, list[str]] = {}
        for version, kind, field in changes.select("version", "change", "field").iter_rows():
            if kind not in kinds.setdefault(version, []):
                kinds[version].append(kind)
            # a merge changes the status as well as the target the row names
            for f in ("status", field) if kind == "merged" else (field,):
                if f not in fields.setdefault(version, []):
                    fields[version].append(f)
        valid_from = v["valid_from"].to_list()
        valid_to = v["valid_to"].to_list()
        change_lists = []
        for i, version in enumerate(v["version"].to_list()):
            found = [k for k in CHANGE_KINDS if k in kinds.get(version, [])]
            if i == 0 or valid_to[i - 1] != valid_from[i]:
                found = ["added", *(k for k in found if k != "added")]
            change_lists.append(found)
        field_lists = [
            sorted(fields.get(version, []), key=field_order.__getitem__)
            for version in v["version"].to_list()
        ]
        out = v.with_columns(
            pl.Series("changes", change_lists, dtype=pl.List(pl.String)),
            pl.Series("changed_fields", field_lists, dtype=pl.List(pl.String)),
        )
        return out.select(_HISTORY_SCHEMA.names())


# --------------------------------------------------------------------------------- helpers


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Directory columns in contract order and dtypes; refuse what cannot be stored."""
    comparison_exprs(frame.columns)  # raises if a required column is missing
    if frame.is_empty():
        raise UnusableInputError("cannot store the directory: it has no rows")
    exprs = []
    for col in _DIRECTORY.columns:
        if col.name in frame.columns:
            exprs.append(pl.col(col.name))
        else:
            exprs.append(pl.lit(col.absent_default).alias(col.name))
    out = frame.select(exprs)
    for col in _DIRECTORY.columns:
        if out.schema[col.name] == col.polars_dtype:
            continue
        try:
            out = out.with_columns(pl.col(col.name).cast(col.polars_dtype, strict=True))
        except pl.exceptions.PolarsError as exc:
            raise UnusableInputError(
                f"cannot store the directory: column {col.name} ({out.schema[col.name]}) does "
                f"not convert to {col.polars_dtype}: {exc}"
            ) from exc
    ids = out[_ID].cast(pl.String).str.strip_chars()
    blank = (ids.is_null() | (ids == "")).arg_true()
    if blank.len():
        rows = frame["source_row"] if "source_row" in frame.columns else None
        where = (rows.gather(blank) if rows is not None else blank + 1).head(5).to_list()
        raise UnusableInputError(
            f"cannot store the directory: {blank.len()} row(s) without an institution_id "
            f"({'source rows' if rows is not None else 'rows'} {', '.join(map(str, where))}…)"
        )
    return out


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, rename it."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if os.name == "posix":  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
