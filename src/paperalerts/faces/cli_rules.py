"""CLI: changing and removing keyword rules (`rules edit|enable|disable|remove`; `rules add`,
`list`, `check` and `preview` live in cli_people.py and cli.py). Every change goes through the
subscriptions service, as the admin's and the API's do, so it is validated and audited alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.cli_console import checked, checked_rule, fail, out
from paperalerts.faces.cli_db import open_db
from paperalerts.pipeline import subscriptions

RuleId = Annotated[int, typer.Argument(help="The rule's id (the first column of `rules list`).")]


def _rule(s: Session, rule_id: int) -> m.Rule:
    rule = s.get(m.Rule, rule_id)
    if rule is None:
        fail(f"no rule {rule_id} (`paperalerts rules list` shows their ids)")
    return rule


def rules_edit(
    rule_id: RuleId,
    query: Annotated[str | None, typer.Option(help="The new rule.")] = None,
    name: Annotated[str | None, typer.Option(help="The new name shown in emails.")] = None,
) -> None:
    """Change a rule's query and/or name (only what is given); the query is checked first."""
    if query is None and name is None:
        fail("nothing to change: give --query and/or --name")
    if query is not None:
        checked_rule(query)
    with checked(), transaction(open_db()) as s:
        rule = _rule(s, rule_id)
        before = subscriptions.rule_state(rule)
        subscriptions.edit_rule(
            s, rule, rule.query if query is None else query, rule.name if name is None else name,
            rule.enabled, "cli", datetime.now(UTC),
        )
        verb = "unchanged" if before == subscriptions.rule_state(rule) else "updated"
        line = f"{verb} rule {rule.id} of {rule.subscriber.email}: {rule.normalized}"
    out.print(line, markup=False)


def _set_enabled(rule_id: int, enabled: bool) -> None:
    with checked(), transaction(open_db()) as s:
        rule = _rule(s, rule_id)
        subscriptions.edit_rule(
            s, rule, rule.query, rule.name, enabled, "cli", datetime.now(UTC)
        )
        line = f"{'enabled' if enabled else 'disabled'} rule {rule.id} of {rule.subscriber.email}"
    out.print(line, markup=False)


def rules_enable(rule_id: RuleId) -> None:
    """Match with this rule again."""
    _set_enabled(rule_id, True)


def rules_disable(rule_id: RuleId) -> None:
    """Stop matching with this rule but keep it (`rules enable` brings it back)."""
    _set_enabled(rule_id, False)


def rules_remove(rule_id: RuleId) -> None:
    """Delete a rule (papers it matched already stay matched; `rules disable` keeps it)."""
    with checked(), transaction(open_db()) as s:
        rule = _rule(s, rule_id)
        line = f"removed rule {rule.id} of {rule.subscriber.email}: {rule.query}"
        subscriptions.delete_rule(s, rule, "cli")
    out.print(line, markup=False)


def register(rules_app: typer.Typer) -> None:
    rules_app.command("edit")(rules_edit)
    rules_app.command("enable")(rules_enable)
    rules_app.command("disable")(rules_disable)
    rules_app.command("remove")(rules_remove)
