"""The rule catalogue: unique ids, documentation generated from the code."""

from pathlib import Path

from energy_audit.catalogue import all_rules, render_rules_markdown
from energy_audit.findings import CATEGORY_ZH

DOCS = Path(__file__).resolve().parent.parent / "docs" / "rules.md"


def test_rules_have_unique_ids_and_known_categories():
    rules = all_rules()
    assert len({r.rule_id for r in rules}) == len(rules)
    assert {r.category for r in rules} <= set(CATEGORY_ZH)
    assert {r.severity for r in rules} <= {"error", "warning", "info"}


def test_docs_rules_is_generated_from_the_catalogue():
    assert DOCS.read_text(encoding="utf-8") == render_rules_markdown(), (
        "docs/rules.md is stale: run `energy-audit rules --out docs/rules.md`"
    )
