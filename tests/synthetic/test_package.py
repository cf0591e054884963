"""The synthetic package: one module per topic, every public name handed from the top."""

import importlib

import energy_audit.synthetic as synthetic

MODULES = (
    "columns", "vocabulary", "parameters", "directory", "institutions", "noise", "totals",
    "returns", "defects", "files", "evolution",
)  # fmt: skip
#: The public names of the module synthetic.py was before it became a package.
BEFORE = {
    "CHANGES_SCHEMA", "DEFAULT_DEFECT_RATES", "DEFAULT_EVOLUTION_RATES", "DEFECT_KINDS",
    "DIRECTORY_CHANGE_KINDS", "DIRECTORY_COLUMNS", "DIRECTORY_DEFECT_KINDS",
    "DIRECTORY_DEFECT_SCHEMA", "EVOLUTION_EVENTS", "MESSY_CELL_VARIANTS", "RETURNS_COLUMNS",
    "RETURNS_HEADERS_ZH", "STATISTICAL_DEFECT_KINDS", "TRUTH_SCHEMA", "XLSX_MAX_ROWS",
    "district_trends", "evolve_directory", "inject_directory_defects", "make_directory",
    "make_returns", "write_city", "write_returns_file",
}  # fmt: skip


def test_every_public_name_is_handed_from_the_top() -> None:
    public = set()
    for name in MODULES:
        module = importlib.import_module(f"energy_audit.synthetic.{name}")
        assert isinstance(module.__all__, list), name
        for attr in module.__all__:
            assert getattr(synthetic, attr) is getattr(module, attr), (name, attr)
        public |= set(module.__all__)
    assert set(synthetic.__all__) == public
    assert public >= BEFORE
    assert {"DEFECTS", "Defect", "NOISE_FAMILIES", "WAN_UNITS", "through_files"} <= public
