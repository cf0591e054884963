"""The quarterly directory maintenance run: check a snapshot, diff it, store it when clean.

These are the library calls behind ``energy-audit directory check | diff | update``; a user can
make them in Jupyter too. Every call writes its outputs into a folder:

- ``findings.parquet`` (findings table, data contract §5) and ``findings.xlsx`` (Chinese
  headers, sorted by priority) — :func:`check_file`;
- ``changes.parquet`` (``institution_id, change, field, old_value, new_value``) and
  ``changes.xlsx`` (one sheet per change kind) — :func:`diff_files`;
- all four for :func:`update_store`, which stores the snapshot only when it has no ``error``
  finding, unless the errors are accepted with a reason (recorded in the store's manifest).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from energy_audit.directory.checks import check_directory
from energy_audit.directory.diff import diff_directories, summarize_changes, write_change_report
from energy_audit.directory.history import DirectoryStore, SnapshotInfo
from energy_audit.errors import UnusableInputError
from energy_audit.io.readers import ReadResult, file_sha256, read_directory
from energy_audit.io.writers import write_excel


@dataclass(frozen=True)
class CheckResult:
    """A directory file as read and its findings."""

    read: ReadResult
    findings: pl.DataFrame

    @property
    def counts(self) -> dict[str, int]:
        """Number of findings per severity (``error``, ``warning``, ``info``)."""
        return {
            s: int((self.findings["severity"] == s).sum()) for s in ("error", "warning", "info")
        }


@dataclass(frozen=True)
class UpdateResult:
    """What :func:`update_store` did.

    Attributes
    ----------
    stored : bool
        The snapshot was added to the store.
    check : CheckResult
        The file as read and its findings.
    changes : polars.DataFrame
        Changes against the latest stored snapshot (everything ``added`` for a new store).
    snapshot : SnapshotInfo or None
        The manifest entry written, when stored.
    out_dir : Path
        Where the findings and the change report were written.
    """

    stored: bool
    check: CheckResult
    changes: pl.DataFrame
    snapshot: SnapshotInfo | None
    out_dir: Path


def write_findings(findings: pl.DataFrame, out_dir: str | Path, *, title: str) -> Path:
    """Write ``findings.parquet`` and ``findings.xlsx`` (Chinese headers) into ``out_dir``.

    Returns
    -------
    pathlib.Path
        The Parquet file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    findings.write_parquet(out / "findings.parquet")
    write_excel({"核查发现": findings}, out / "findings.xlsx", title=title)
    return out / "findings.parquet"


def check_file(path: str | Path, out_dir: str | Path | None = None) -> CheckResult:
    """Read a directory snapshot and run every directory rule on it.

    Parameters
    ----------
    path : str or Path
        Directory file (.xlsx, .csv or .parquet).
    out_dir : str or Path, optional
        Folder for ``findings.parquet`` and ``findings.xlsx`` (nothing written if omitted).

    Returns
    -------
    CheckResult
        The file as read and its findings.

    Raises
    ------
    UnusableInputError
        If the file cannot be read.
    """
    read = read_directory(path)
    result = CheckResult(read, check_directory(read))
    if out_dir is not None:
        write_findings(result.findings, out_dir, title=f"名录库核查：{Path(path).name}")
    return result


def diff_files(old: str | Path, new: str | Path, out_dir: str | Path | None = None) -> pl.DataFrame:
    """Compare two directory snapshots file by file.

    Parameters
    ----------
    old, new : str or Path
        The earlier and the later snapshot files.
    out_dir : str or Path, optional
        Folder for ``changes.parquet`` and ``changes.xlsx`` (nothing written if omitted).

    Returns
    -------
    polars.DataFrame
        One row per change (see :func:`energy_audit.directory.diff.diff_directories`).
    """
    changes = diff_directories(read_directory(old).data, read_directory(new).data)
    if out_dir is not None:
        _write_changes(changes, out_dir, Path(old).name, Path(new).name)
    return changes


def _write_changes(changes: pl.DataFrame, out_dir: str | Path, old: str, new: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    changes.write_parquet(out / "changes.parquet")
    write_change_report(changes, out / "changes.xlsx", old_label=old, new_label=new)


def update_store(
    store_path: str | Path,
    path: str | Path,
    as_of: dt.date,
    *,
    accept_errors: bool = False,
    reason: str | None = None,
    out_dir: str | Path | None = None,
) -> UpdateResult:
    """Run the quarterly update: check, diff against the latest snapshot, store if clean.

    Parameters
    ----------
    store_path : str or Path
        The directory store (created when the folder does not exist yet).
    path : str or Path
        The new snapshot file.
    as_of : datetime.date
        The date the snapshot is as of; after the latest stored one.
    accept_errors : bool, default False
        Store the snapshot although it has ``error`` findings.
    reason : str, optional
        Why the errors are accepted (required with ``accept_errors``); kept in the manifest.
    out_dir : str or Path, optional
        Folder for the findings and the change report (default
        ``<store>/reports/<as_of>``).

    Returns
    -------
    UpdateResult
        Whether the snapshot was stored, with the findings and the changes. The store is left
        unchanged when it was not.

    Raises
    ------
    ValueError
        If ``accept_errors`` is given without a reason.
    UnusableInputError
        If the file cannot be read, the folder is not a store, or ``as_of`` is not after the
        latest stored snapshot.
    """
    if accept_errors and not (reason and reason.strip()):
        raise ValueError("accepting a snapshot with errors needs a reason")
    store_path = Path(store_path)
    store = (
        DirectoryStore(store_path)
        if (store_path / "manifest.json").exists()
        or (store_path.exists() and any(store_path.iterdir()))
        else DirectoryStore.create(store_path)
    )
    stored = store.snapshots()
    if stored.height and stored["as_of"].max() >= as_of:
        raise UnusableInputError(
            f"{store_path}: snapshot of {as_of} is not after the latest stored one "
            f"({stored['as_of'].max()}); snapshots are stored in date order"
        )
    check = check_file(path)
    previous = store.latest()
    changes = diff_directories(
        previous if previous is not None else check.read.data.clear(), check.read.data
    )
    out = Path(out_dir) if out_dir is not None else store_path / "reports" / as_of.isoformat()
    write_findings(check.findings, out, title=f"名录库核查：{Path(path).name}（{as_of}）")
    previous_label = stored["as_of"].max().isoformat() if stored.height else "（空）"
    _write_changes(changes, out, previous_label, as_of.isoformat())
    counts = check.counts
    if counts["error"] and not accept_errors:
        return UpdateResult(False, check, changes, None, out)
    info = store.add(
        check.read.data,
        as_of,
        source_file=Path(path).name,
        source_sha256=file_sha256(path),
        accepted_with_errors=bool(counts["error"]) and accept_errors,
        reason=reason if counts["error"] and accept_errors else None,
        findings_summary={"findings": counts, "changes": summarize_changes(changes)},
    )
    return UpdateResult(True, check, changes, info, out)
