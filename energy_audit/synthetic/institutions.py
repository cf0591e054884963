"""The institutions a city's returns are drawn for.

The directory's rows, then phantoms: units that report but are not in the directory yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from energy_audit.directory.codes import make_credit_codes
from energy_audit.synthetic.columns import (
    _HEAT_BILLING,
    _LEVELS,
)
from energy_audit.synthetic.directory import (
    _check_directory_columns,
    _index_of,
)
from energy_audit.synthetic.parameters import (
    _CENTRAL_DISTRICTS,
    _REGION_NAME,
    _SECTORS,
)
from energy_audit.synthetic.vocabulary import _NEW_UNITS, _cycle_suffix, _digits, _vocab

__all__: list[str] = []


@dataclass
class _Institutions:
    """What the generator needs per institution (directory rows, then phantom rows)."""

    ids: pl.Series
    names: pl.Series
    sector: npt.NDArray[np.int64]
    level: npt.NDArray[np.int64]
    district: npt.NDArray[np.int64]
    central: npt.NDArray[np.bool_]
    heat: npt.NDArray[np.int64]
    key_user: npt.NDArray[np.bool_]
    status: npt.NDArray[np.str_]
    parent: npt.NDArray[np.int64]  # row of the parent, -1 if none
    related: pl.Series  # merged_into_id (or null)

    @property
    def size(self) -> int:
        return self.sector.shape[0]


def _institutions(
    directory: pl.DataFrame, table: pl.DataFrame, n_phantoms: int, rng: np.random.Generator
) -> _Institutions:
    """Directory rows plus ``n_phantoms`` institutions that are not in the directory."""
    _check_directory_columns(directory)
    codes = table["district_code"].to_list()
    d = directory.with_row_index("row")
    parent = (
        d.select("row", "parent_id")
        .join(
            d.select(pl.col("institution_id").alias("parent_id"), pl.col("row").alias("p")),
            on="parent_id",
            how="left",
            maintain_order="left",
        )["p"]
        .fill_null(-1)
        .cast(pl.Int64)
        .to_numpy()
    )
    district = _index_of(directory["district_code"], codes)

    # Phantoms: new units (融媒体中心 …) that report but are not in the directory yet. Their
    # bodies start with "MC" (make_directory uses digits and "MB"); codes a foreign directory
    # already has are dropped.
    candidates = pl.Series(
        make_credit_codes(
            "12",
            np.array(codes)[rng.integers(0, len(codes), 2 * n_phantoms)],
            np.char.add("MC", _digits(rng.choice(10**6, size=2 * n_phantoms, replace=False), 6)),
        ),
        dtype=pl.String,
    )
    ph_ids = candidates.filter(~candidates.is_in(directory["institution_id"].implode())).head(
        n_phantoms
    )
    if ph_ids.len() < n_phantoms:
        raise ValueError("could not make credit codes outside the directory for the phantoms")
    ph_district = _index_of(ph_ids.str.slice(2, 6), codes)
    ph_k = np.arange(n_phantoms, dtype=np.int64)
    ph_names = (
        _REGION_NAME
        + table["name_zh"].gather(ph_district)
        + _vocab(_NEW_UNITS, ph_k)
        + _cycle_suffix(ph_k // len(_NEW_UNITS))
    )

    def both(values: npt.NDArray, extra: npt.NDArray) -> npt.NDArray:
        return np.concatenate([values, extra])

    def phantoms(index: int) -> npt.NDArray[np.int64]:
        return np.full(n_phantoms, index, dtype=np.int64)

    central = np.array([c in _CENTRAL_DISTRICTS for c in codes], dtype=bool)
    return _Institutions(  # phantoms: district-level other_service units, heating billed by area
        ids=pl.concat([directory["institution_id"], ph_ids]),
        names=pl.concat([directory["name"], ph_names]),
        sector=both(
            _index_of(directory["sector"], _SECTORS), phantoms(_SECTORS.index("other_service"))
        ),
        level=both(
            _index_of(directory["admin_level"], _LEVELS), phantoms(_LEVELS.index("district"))
        ),
        district=both(district, ph_district),
        central=both(central[district], central[ph_district]),
        heat=both(
            _index_of(directory["heat_billing"], _HEAT_BILLING),
            phantoms(_HEAT_BILLING.index("by_area")),
        ),
        key_user=both(
            directory["key_energy_user"].fill_null(False).to_numpy(), np.zeros(n_phantoms, bool)
        ),
        status=both(directory["status"].to_numpy().astype("U9"), np.full(n_phantoms, "phantom")),
        parent=both(parent, np.full(n_phantoms, -1)),
        related=pl.concat(
            [directory["merged_into_id"], pl.Series([None] * n_phantoms, dtype=pl.String)]
        ),
    )
