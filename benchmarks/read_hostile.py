"""Peak memory and time of reading hostile CSV shapes, beside the naive ``pl.read_csv``.

What is measured
----------------
Three files (issue 9, "Done when"), written once into ``--out`` (default ``benchmarks/out/``,
git-ignored) by a separate process, outside the timing:

- ``one line, 2 M fields``: a single line of 2,000,000 fields (``1234,1234,…``), 10 MB;
- ``single 10 MB cell``: the Chinese header row and one return whose 单位名称 cell holds
  10 MB of text (3.3 million characters 测, on one line);
- ``300 MB returns``: synthetic returns of :mod:`energy_audit.synthetic` (year 2024, default
  defects, messy cells; UTF-8 with BOM as :func:`~energy_audit.synthetic.write_returns_file`
  writes them), the data records of a 20,000-row file repeated until the file holds 300 MB;
- ``300 MB returns, a multi-line cell``: the same file with a line break inside the (quoted)
  单位名称 cell of its first record: polars' row numbers would no longer be line numbers, so
  the reader's line tokenizer reads it (its slow path).

Each (file, reader) pair runs in a fresh Python process:

- ``read_returns``: :func:`energy_audit.read_returns` (the project's reader);
- ``text layer``: :func:`energy_audit.io.delimited.read_delimited` alone (bytes to a grid of
  text cells: encoding, separator, quotes, record starts), the part of ``read_returns`` before
  headers and cells are looked at;
- ``pl.read_csv``: ``polars.read_csv(path)`` with its defaults (the naive baseline);
- ``pl.read_csv text``: ``polars.read_csv(path, infer_schema=False)``, every column as text
  (parsing alone, no cleaning: the floor of any reader built on polars).

``seconds`` is the wall time of the read in the child (imports excluded). ``peak RSS MB`` is
the child's ``ru_maxrss`` (the resource usage of that one child, as ``os.wait4`` returns it:
the figure ``getrusage(RUSAGE_CHILDREN)`` reports, per child), imports included; the first row
of the table (``python + imports``) is the floor of every child. On Linux ``ru_maxrss`` of a
child starts at the parent's RSS (it survives ``fork``/``execve``), so the parent stays small:
it neither imports polars nor writes the files itself. A child whose RSS passes ``--limit-gb``
(default 8 GB) is killed by the parent's watchdog, and one running longer than ``--timeout``
seconds too; the outcome says so. ``outcome`` is what the reader returned (rows in the data and
in quarantine), the first words of its error, or the kill.

How to run
----------
From the repository root::

    .venv/bin/python benchmarks/read_hostile.py
    .venv/bin/python benchmarks/read_hostile.py --mb 50 --readers read_returns
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
READERS = ("read_returns", "text layer", "pl.read_csv", "pl.read_csv text")
FIELDS = 2_000_000
CELL_CHARS = 10_000_000
SEED_ROWS = 20_000
HEADER = "统一社会信用代码,统计年度,单位名称,建筑面积(平方米),用能人数,电(千瓦时),水(吨)"


# ------------------------------------------------------------------------------ input files


def file_paths(out: Path, mb: int) -> dict[str, Path]:
    return {
        "one line, 2 M fields": out / "hostile_one_line_2M_fields.csv",
        "single 10 MB cell": out / "hostile_single_10MB_cell.csv",
        f"{mb} MB returns": out / f"hostile_returns_{mb}MB.csv",
        f"{mb} MB returns, a multi-line cell": out / f"hostile_returns_{mb}MB_multiline.csv",
    }


def write_files(out: Path, mb: int) -> None:
    """Write the missing input files (run in a child process: the parent stays small)."""
    out.mkdir(parents=True, exist_ok=True)
    wide, cell, returns, multiline = file_paths(out, mb).values()
    if not wide.exists():
        wide.write_bytes(b",".join([b"1234"] * FIELDS) + b"\n")
    if not cell.exists():
        body = f"11100000000013338W,2024,{'测' * (CELL_CHARS // 3)}{'x' * (CELL_CHARS % 3)}"
        cell.write_text(f"{HEADER}\n{body},10000,300,500000,6000\n", encoding="utf-8")
    if not returns.exists():
        _write_returns(returns, mb)
    if not multiline.exists():
        _write_multiline(returns, multiline)


def _write_returns(path: Path, mb: int) -> None:
    """Synthetic returns, data records repeated to ``mb`` MB (records split by the csv module)."""
    import csv
    import io

    from energy_audit.synthetic import make_directory, make_returns, write_returns_file

    directory = make_directory(round(SEED_ROWS * 1.06), 7)
    frame, truth = make_returns(directory, years=[2024], seed=7, defects=True)
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "seed.csv"
        write_returns_file(frame.head(SEED_ROWS), seed, seed=7, year=2024, truth=truth)
        data = seed.read_bytes()
    bom = data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    records = list(csv.reader(io.StringIO(text, newline="")))
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(records[1:])
    block = buffer.getvalue().encode("utf-8")
    head = io.StringIO(newline="")
    csv.writer(head, lineterminator="\r\n").writerow(records[0])
    target = mb * 1_000_000
    partial = path.with_name(f"partial_{path.name}")
    with partial.open("wb") as fh:
        fh.write((b"\xef\xbb\xbf" if bom else b"") + head.getvalue().encode("utf-8"))
        written = fh.tell()
        while written < target:
            fh.write(block)
            written += len(block)
    partial.replace(path)


def _write_multiline(returns: Path, path: Path) -> None:
    """The returns file with a line break in the 单位名称 cell of its first record (quoted)."""
    data = returns.read_bytes()
    first = data.index(b"\n") + 1
    second = data.index(b"\n", first) + 1
    cells = data[first:second].split(b",")
    cells[2] = b'"' + cells[2] + b'\r\n(second line)"'
    partial = path.with_name(f"partial_{path.name}")
    partial.write_bytes(data[:first] + b",".join(cells) + data[second:])
    partial.replace(path)


# ------------------------------------------------------------------------------- measurement


def child(reader: str, path: Path | None) -> None:
    """Read ``path`` with ``reader`` in this process; print a JSON record (last line)."""
    import polars as pl

    from energy_audit import read_returns
    from energy_audit.errors import EnergyAuditError

    if path is None:  # the floor: python with the imports
        print(json.dumps({"seconds": 0.0, "outcome": "imports only"}))
        return
    start = time.perf_counter()
    try:
        if reader == "text layer":
            from energy_audit.io.delimited import read_delimited

            grid = read_delimited(path)
            outcome = f"{grid.frame.height:,} records × {grid.frame.width:,} fields"
        elif reader == "read_returns":
            result = read_returns(path)
            whole = int(result.quarantine["column"].is_null().sum())
            outcome = (
                f"{result.data.height:,} rows in data, {whole:,} whole rows and "
                f"{result.quarantine.height - whole:,} cells in quarantine"
            )
        else:
            frame = pl.read_csv(path, infer_schema=reader == "pl.read_csv")
            outcome = f"{frame.height:,} rows × {frame.width:,} columns"
    except EnergyAuditError as exc:
        outcome = f"refused: {exc.message_en[:90]}"
    except Exception as exc:  # the baseline's own errors are part of the comparison
        outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    print(json.dumps({"seconds": time.perf_counter() - start, "outcome": outcome}))


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(reader: str, path: Path | None, limit_bytes: int, timeout: float) -> dict:
    """Run :func:`child` in a fresh interpreter; its record, peak RSS and any kill."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", reader]
    if path is not None:
        command.append(str(path))
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)
        killed = None
        started = time.monotonic()
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if _rss_bytes(proc.pid) > limit_bytes:
                killed = f"killed: RSS above the {limit_bytes / 1e9:.0f} GB limit"
            elif time.monotonic() - started > timeout:
                killed = f"killed: still running after {timeout:.0f} s"
            if killed:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        lines = out.read().strip().splitlines()
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    if killed:
        return {"seconds": time.monotonic() - started, "outcome": killed, "peak": peak}
    try:
        record = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = lines[-1][:80] if lines else ""
        record = {"seconds": time.monotonic() - started, "outcome": f"crashed: {tail}"}
    record["peak"] = peak
    return record


# ----------------------------------------------------------------------------------- report


def table(rows: list[dict]) -> str:
    headers = ("case", "reader", "file MB", "seconds", "peak RSS MB", "outcome")
    lines = [
        (
            r["case"],
            r["reader"],
            f"{r['file_mb']:.1f}" if r["file_mb"] is not None else "",
            f"{r['seconds']:.2f}",
            f"{r['peak'] / 1e6:,.0f}",
            r["outcome"],
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    right = {2, 3, 4}

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the input files")
    parser.add_argument("--mb", type=int, default=300, help="size of the returns file [MB]")
    parser.add_argument(
        "--readers", default=",".join(READERS), help="comma-separated, of: " + ", ".join(READERS)
    )
    parser.add_argument("--limit-gb", type=float, default=8.0, help="RSS at which a child dies")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a kill")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--write-files", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        child(args.child[0], Path(args.child[1]) if len(args.child) > 1 else None)
        return 0
    if args.write_files:
        write_files(args.out, args.mb)
        return 0
    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    if unknown := sorted(set(readers) - set(READERS)):
        parser.error(f"unknown reader(s) {unknown}; known: {list(READERS)}")

    print("writing the input files (once) …", file=sys.stderr, flush=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--write-files"]
    subprocess.run([*command, "--out", str(args.out), "--mb", str(args.mb)], check=True)
    limit = int(args.limit_gb * 1e9)
    floor = measure("read_returns", None, limit, args.timeout)
    rows = [{"case": "python + imports", "reader": "", "file_mb": None, **floor}]
    for case, path in file_paths(args.out, args.mb).items():
        for reader in readers:
            print(f"{case}: {reader} …", file=sys.stderr, flush=True)
            record = measure(reader, path, limit, args.timeout)
            rows.append(
                {"case": case, "reader": reader, "file_mb": path.stat().st_size / 1e6, **record}
            )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{platform.platform()}; python {platform.python_version()}; {usable} usable cores")
    print(f"peak RSS: ru_maxrss of each child (fresh process); kill above {args.limit_gb:g} GB")
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
