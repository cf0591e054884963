"""The rule catalogue: every rule of every stage, and its documentation ``docs/rules.md``.

Rules are defined where they are checked (e.g. :mod:`energy_audit.directory.checks`); this module
only gathers them, so that ids stay unique and the documentation is generated from the code
(``energy-audit rules --out docs/rules.md``; a test fails when the file is stale).
"""

from __future__ import annotations

from energy_audit.directory.checks import DIRECTORY_RULES, DirectoryCheckSettings
from energy_audit.findings import CATEGORY_ZH, Rule
from energy_audit.verify.batches import FOLDED_CATEGORIES
from energy_audit.verify.consistency import CONSISTENCY_RULES
from energy_audit.verify.coverage import COVERAGE_RULES
from energy_audit.verify.settings import VerifySettings
from energy_audit.verify.statistical import STATISTICAL_RULES
from energy_audit.verify.validity import VALIDITY_RULES


def all_rules() -> tuple[Rule, ...]:
    """Return every rule of the library, in id order.

    Raises
    ------
    AssertionError
        If two rules share an id (a programming error).
    """
    rules = tuple(
        sorted(
            (
                *DIRECTORY_RULES,
                *COVERAGE_RULES,
                *VALIDITY_RULES,
                *CONSISTENCY_RULES,
                *STATISTICAL_RULES,
            ),
            key=lambda r: r.rule_id,
        )
    )
    ids = [r.rule_id for r in rules]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicated, f"rule ids used twice: {duplicated}"
    return rules


def _show(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_show(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "/".join(str(v) for v in value)
    return str(value)


def render_rules_markdown() -> str:
    """Render the catalogue as Markdown (the text of ``docs/rules.md``)."""
    verify = VerifySettings().to_dict()
    statistical = {f"statistical.{k}": v for k, v in verify.pop("statistical").items()}
    defaults = {**DirectoryCheckSettings().to_dict(), **verify, **statistical}
    lines = [
        "# Rules",
        "",
        "<!-- Generated from the code by `energy-audit rules --out docs/rules.md`; do not edit by",
        "     hand: tests/test_catalogue.py fails when the two drift apart. -->",
        "",
        "Every finding names the rule that made it. Severity: `error` cannot be right, `warning`",
        "needs a look, `info` is for the record. Rule ids are stable: a retired rule's id is",
        "never reused.",
        "",
        f"Systemic findings (批次问题): when one {', '.join(FOLDED_CATEGORIES[:-1])} or "
        f"{FOLDED_CATEGORIES[-1]} rule",
        f"fires on at least `batch_share` = {_show(defaults['batch_share'])} of the returns of "
        "one source file or one district",
        f"(per year) and on at least `batch_min_returns` = {_show(defaults['batch_min_returns'])}"
        " of them, the panel gets one batch",
        "finding of that rule (same id, category and severity, no institution, `value` = the",
        "returns concerned) at the rule's priority; the findings it stands for stay in the table",
        "at priority 0 with its `finding_id` as their `batch_id` (`energy_audit.verify.batches`).",
        "同一规则在同一文件或同一区的多数填报上触发时，按一个批次问题处理，逐条发现保留但不占审核名额。",
        "",
    ]
    rules = all_rules()
    for category, zh in CATEGORY_ZH.items():
        these = [r for r in rules if r.category == category]
        if not these:
            continue
        lines += [
            f"## {zh} — {category}",
            "",
            "| rule | severity | 说明 | description | settings (default) |",
            "|---|---|---|---|---|",
        ]
        for r in these:
            settings = "; ".join(f"`{s}` = {_show(defaults.get(s, ''))}" for s in r.settings)
            lines.append(
                f"| `{r.rule_id}` | {r.severity} | {r.title_zh} | {r.title_en} | {settings} |"
            )
        lines.append("")
    return "\n".join(lines)
