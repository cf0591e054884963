"""The quarterly directory maintenance run: check a snapshot, diff it, store it when clean.

These are the library calls behind ``energy-audit directory check | diff | update``; a user can
make them in Jupyter too. Every call writes its outputs into a folder:

- ``findings.parquet`` (findings table, data contract §5) and ``findings.xlsx`` (Chinese
  headers, sorted by priority) — :func:`check_file`;
- ``changes.parquet`` (``institution_id, change, field, old_value, new_value``) and
  ``changes.xlsx`` (one sheet per change kind) — :func:`diff_files`; contact names and phones
  are withheld in both (:func:`energy_audit.directory.diff.mask_personal`): the store alone
  keeps them;
- all four for :func:`update_store`, which stores the snapshot only when it has no ``error``
  finding, unless the errors are accepted with a reason (recorded in the store's manifest).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from energy_audit.directory.checks import check_directory
from energy_audit.directory.diff import (
    diff_directories,
    mask_personal,
    summarize_changes,
    write_change_report,
)
from energy_audit.directory.history import DirectoryStore, SnapshotInfo
from energy_audit.errors import Lang, UnusableInputError
from energy_audit.io.readers import ReadResult, file_sha256, read_directory
from energy_audit.io.writers import output_folder, write_excel


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


def write_findings(
    findings: pl.DataFrame, out_dir: str | Path, *, title: str, lang: Lang = "zh"
) -> Path:
    """Write ``findings.parquet`` and ``findings.xlsx`` into ``out_dir``.

    Parameters
    ----------
    findings : polars.DataFrame
        Findings table (data contract §5).
    out_dir : str or Path
        Folder (created).
    title : str
        Title row of the workbook.
    lang : {"zh", "en"}, default "zh"
        Language of the workbook's sheet name, headers and coded values (类别 完整性,
        严重程度 错误…); the Parquet file keeps the codes and both messages.

    Returns
    -------
    pathlib.Path
        The Parquet file.

    Raises
    ------
    UnusableInputError
        If the folder or a file cannot be written (e.g. ``out_dir`` names an existing file).
    """
    with output_folder(out_dir) as out:
        findings.write_parquet(out / "findings.parquet")
        sheet = "findings" if lang == "en" else "核查发现"
        write_excel({sheet: findings}, out / "findings.xlsx", title=title, lang=lang)
    return out / "findings.parquet"


def _check_title(path: str | Path, lang: Lang, as_of: dt.date | None = None) -> str:
    name = Path(path).name
    if lang == "en":
        return f"Directory check: {name}" + (f" ({as_of})" if as_of else "")
    return f"名录库核查：{name}" + (f"（{as_of}）" if as_of else "")


def check_file(
    path: str | Path, out_dir: str | Path | None = None, *, lang: Lang = "zh"
) -> CheckResult:
    """Read a directory snapshot and run every directory rule on it.

    Parameters
    ----------
    path : str or Path
        Directory file (.xlsx, .csv or .parquet).
    out_dir : str or Path, optional
        Folder for ``findings.parquet`` and ``findings.xlsx`` (nothing written if omitted).
    lang : {"zh", "en"}, default "zh"
        Language of the workbook (:func:`write_findings`).

    Returns
    -------
    CheckResult
        The file as read and its findings.

    Raises
    ------
    UnusableInputError
        If the file cannot be read or the outputs cannot be written.
    """
    read = read_directory(path)
    result = CheckResult(read, check_directory(read))
    if out_dir is not None:
        write_findings(result.findings, out_dir, title=_check_title(path, lang), lang=lang)
    return result


def diff_files(
    old: str | Path,
    new: str | Path,
    out_dir: str | Path | None = None,
    *,
    lang: Lang = "zh",
) -> pl.DataFrame:
    """Compare two directory snapshots file by file.

    Parameters
    ----------
    old, new : str or Path
        The earlier and the later snapshot files.
    out_dir : str or Path, optional
        Folder for ``changes.parquet`` and ``changes.xlsx`` (nothing written if omitted).
    lang : {"zh", "en"}, default "zh"
        Language of the change report.

    Returns
    -------
    polars.DataFrame
        One row per change (see :func:`energy_audit.directory.diff.diff_directories`;
        contact values withheld).

    Raises
    ------
    UnusableInputError
        If a file cannot be read or the outputs cannot be written.
    """
    changes = diff_directories(read_directory(old).data, read_directory(new).data)
    if out_dir is not None:
        _write_changes(changes, out_dir, Path(old).name, Path(new).name, lang)
    return changes


def _write_changes(
    changes: pl.DataFrame, out_dir: str | Path, old: str, new: str, lang: Lang
) -> None:
    with output_folder(out_dir) as out:
        mask_personal(changes).write_parquet(out / "changes.parquet")
        write_change_report(changes, out / "changes.xlsx", old_label=old, new_label=new, lang=lang)


def update_store(
    store_path: str | Path,
    path: str | Path,
    as_of: dt.date,
    *,
    accept_errors: bool = False,
    reason: str | None = None,
    out_dir: str | Path | None = None,
    lang: Lang = "zh",
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
    lang : {"zh", "en"}, default "zh"
        Language of the workbooks.

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
            f"{store_path}：{as_of} 的名录快照不晚于库中最新的快照（{stored['as_of'].max()}）；"
            "快照须按日期先后存入",
            f"{store_path}: snapshot of {as_of} is not after the latest stored one "
            f"({stored['as_of'].max()}); snapshots are stored in date order",
        )
    check = check_file(path)
    previous = store.latest()
    changes = diff_directories(
        previous if previous is not None else check.read.data.clear(), check.read.data
    )
    out = Path(out_dir) if out_dir is not None else store_path / "reports" / as_of.isoformat()
    write_findings(check.findings, out, title=_check_title(path, lang, as_of), lang=lang)
    empty = "(empty)" if lang == "en" else "（空）"
    previous_label = stored["as_of"].max().isoformat() if stored.height else empty
    _write_changes(changes, out, previous_label, as_of.isoformat(), lang)
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
