"""A synthetic Tianjin-like city whose truth is known: directory, yearly returns, defects, files.

The generator serves three purposes: tests with known answers (every injected defect is a row of
the *truth* table), demonstrations without personal data, and benchmarks at national scale (1.6
million institutions; everything is vectorised with numpy and polars).

Three layers:

- :func:`make_directory` (:mod:`~energy_audit.synthetic.directory`) builds a 名录库 (data
  contract §1): municipal bureaus with subordinate units, district governments with bureaus and
  street/town offices, the units under them, mass organisations and a few associations
  registered with 民政; valid credit codes whose prefix matches the institution type; a few
  dissolved or merged institutions.
- :func:`make_returns` (:mod:`~energy_audit.synthetic.returns`) builds one return per institution
  in scope and year (data contract §2) with sector-dependent energy and water use, district
  trends, prices, the year-to-year noise of a family of :data:`NOISE_FAMILIES` (``light``,
  ``heavy``, ``mixture``: :mod:`~energy_audit.synthetic.noise`), figures as people write them
  (naturally round figures, round head counts, re-measured areas, the institution's own total
  from its own records: :mod:`~energy_audit.synthetic.totals`), and injected defects of every
  kind listed in :data:`DEFECT_KINDS` (the registry :data:`DEFECTS` of
  :mod:`~energy_audit.synthetic.defects`, each kind naming the rules expected to find it).
- :func:`write_city` (:mod:`~energy_audit.synthetic.files`) writes them the way they arrive at
  the office: xlsx with a title row and Chinese headers and labels (taken from the data
  contract, ``schemas/``), CSV (one year in GB18030 with electricity in 万千瓦时), parquet with
  canonical columns, plus the truth table. Some xlsx/CSV cells carry the text people type
  (``1,234``, ``１２３``, ``500 千瓦时``, ``—``, ``约3000``), recorded as ``messy_cell`` truth
  rows. Each returns file is written by :func:`write_returns_file`, which also writes any
  returns frame (e.g. for a benchmark); :func:`through_files` writes a frame in 万 units
  (:data:`WAN_UNITS`) and reads it back, as history arrives from an office's spreadsheets.

Directory maintenance, for the quarterly directory run (:mod:`~energy_audit.synthetic.evolution`):

- :func:`evolve_directory` turns a directory into the next quarter's snapshot (institutions added,
  dissolved, merged, removed, renamed, moved, re-parented, edited) and returns the change table
  it made (:data:`CHANGES_SCHEMA`, kinds :data:`DIRECTORY_CHANGE_KINDS`).
- :func:`inject_directory_defects` injects one of each directory defect
  (:data:`DIRECTORY_DEFECT_KINDS`: invalid codes, duplicates, unknown labels, parent problems …)
  and returns their truth table (:data:`DIRECTORY_DEFECT_SCHEMA`).

Scope: the directory is one snapshot (the fourth quarter of the last year). An institution is in
scope of every year when its status is ``active``; dissolved and merged institutions file no
return unless a ``return_from_dissolved`` / ``return_from_merged`` defect says so.

All numbers describing the synthetic city (sector profiles, prices, district trends, defect rates)
are illustrative parameters of the generator (:mod:`~energy_audit.synthetic.parameters`), not
reference values.

Modules: :mod:`~energy_audit.synthetic.columns` (columns, Chinese headers and labels from the
contract), :mod:`~energy_audit.synthetic.vocabulary` (names and words),
:mod:`~energy_audit.synthetic.parameters`, :mod:`~energy_audit.synthetic.directory`,
:mod:`~energy_audit.synthetic.institutions`, :mod:`~energy_audit.synthetic.noise`,
:mod:`~energy_audit.synthetic.totals`, :mod:`~energy_audit.synthetic.returns`,
:mod:`~energy_audit.synthetic.defects`, :mod:`~energy_audit.synthetic.files`,
:mod:`~energy_audit.synthetic.evolution`.
"""

from energy_audit.synthetic.columns import DIRECTORY_COLUMNS, RETURNS_COLUMNS, RETURNS_HEADERS_ZH
from energy_audit.synthetic.defects import (
    DEFAULT_DEFECT_RATES,
    DEFECT_KINDS,
    DEFECTS,
    STATISTICAL_DEFECT_KINDS,
    TRUTH_SCHEMA,
    Defect,
)
from energy_audit.synthetic.directory import district_trends, make_directory
from energy_audit.synthetic.evolution import (
    CHANGES_SCHEMA,
    DEFAULT_EVOLUTION_RATES,
    DIRECTORY_CHANGE_KINDS,
    DIRECTORY_DEFECT_KINDS,
    DIRECTORY_DEFECT_SCHEMA,
    EVOLUTION_EVENTS,
    evolve_directory,
    inject_directory_defects,
)
from energy_audit.synthetic.files import (
    MESSY_CELL_VARIANTS,
    WAN_UNITS,
    XLSX_MAX_ROWS,
    through_files,
    write_city,
    write_returns_file,
)
from energy_audit.synthetic.noise import NOISE_FAMILIES
from energy_audit.synthetic.returns import make_returns

__all__ = [
    "CHANGES_SCHEMA",
    "DEFAULT_DEFECT_RATES",
    "DEFAULT_EVOLUTION_RATES",
    "DEFECTS",
    "DEFECT_KINDS",
    "DIRECTORY_CHANGE_KINDS",
    "DIRECTORY_COLUMNS",
    "DIRECTORY_DEFECT_KINDS",
    "DIRECTORY_DEFECT_SCHEMA",
    "EVOLUTION_EVENTS",
    "MESSY_CELL_VARIANTS",
    "NOISE_FAMILIES",
    "RETURNS_COLUMNS",
    "RETURNS_HEADERS_ZH",
    "STATISTICAL_DEFECT_KINDS",
    "TRUTH_SCHEMA",
    "WAN_UNITS",
    "XLSX_MAX_ROWS",
    "Defect",
    "district_trends",
    "evolve_directory",
    "inject_directory_defects",
    "make_directory",
    "make_returns",
    "through_files",
    "write_city",
    "write_returns_file",
]
