"""Keyword rules: the language (`syntax`), text analysis (`text`), and the matcher (`engine`).

Pure: values in, values out. Typical use::

    index = compile_rules([(rule.id, rule.query) for rule in rules], term_frequencies(recent))
    for m in index.match(papers):
        store(m.paper_id, m.rule, explanation_json(m))
"""

from paperalerts.core.rules.analysed import AUTHOR_SEPARATOR, SOURCE_SEPARATOR, Hit, source_names
from paperalerts.core.rules.engine import (
    RuleIndex,
    compile_rules,
    match_brute_force,
    match_with_index,
    term_frequencies,
)
from paperalerts.core.rules.prepare import ParsedRules
from paperalerts.core.rules.syntax import Query, parse, to_text
from paperalerts.core.rules.tree import Match, RuleKey, explanation_json
from paperalerts.core.rules.verdicts import turned_true, turned_true_brute_force

__all__ = [
    "AUTHOR_SEPARATOR",
    "SOURCE_SEPARATOR",
    "Hit",
    "Match",
    "ParsedRules",
    "Query",
    "RuleIndex",
    "RuleKey",
    "compile_rules",
    "explanation_json",
    "match_brute_force",
    "match_with_index",
    "parse",
    "source_names",
    "term_frequencies",
    "to_text",
    "turned_true",
    "turned_true_brute_force",
]
