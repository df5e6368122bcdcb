"""The rule language: query text -> AST, and the AST's normalised printed form. Pure.

Why a hand-written parser and not lark or luqum: the grammar is five small productions, but nearly
every error needs its own message and the exact character it points at ("unbalanced parenthesis
at 14", "unknown field 'titel' at 0 — did you mean 'title'?", "prefix 'di*' is too short"), and
the lexical rules are context-dependent (``-x`` negates but ``self-supervised`` is one word;
``title:(`` opens a scoped group only when the parenthesis touches the colon; ``AND`` is an
operator, ``and`` a word). With lark each of those would be an UnexpectedInput to translate back
into a message and a position; recursive descent states them directly. Luqum parses Lucene
syntax, whose semantics differ (lower-case operators, ranges, fuzzy terms, boosts).

Grammar (NOT binds tighter than AND, AND tighter than OR; adjacency is AND)::

    rule  := or EOF
    or    := and ("OR" and)*
    and   := unary (["AND"] unary)*
    unary := "NOT" unary | "-" unary          (the "-" touching what it negates)
           | atom
    atom  := "(" or ")" | FIELD ":" value | '"' phrase '"' | '="' words '"' | word | word "*"
    value := "(" or ")" | '"' phrase '"' | '="' words '"' | word | word "*"
           | [op] digits (upvotes:, comments:)

``="..."`` is the exact word form: the words exactly as written (case, accents and punctuation
still ignored), never stemmed, so ``="transformer"`` does not match "transformers" or
"transformed". It was a syntax error before it existed ("'=' has no letters or digits"), so no
stored rule changes meaning: ``transformer``, ``"transformer"`` and ``=transformer`` (a word
with punctuation) keep matching every form of the word.

Fields are pushed down into the leaves while parsing (``title:(a OR b)`` becomes
``Or(Term("a", "title"), Term("b", "title"))``); a field inside a field group is an error. Leaves
keep the text as written (case, accents) so explanations can quote the rule; the analyser in
`text` normalises at match time. `parse` flattens nested AND/OR, so `to_text` is a fixed point:
``parse(to_text(parse(q))) == parse(q)``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import NamedTuple

from paperalerts.core.rules.plain import MAX_TERMS, plain_groups
from paperalerts.core.rules.text import words
from paperalerts.errors import RuleError

MAX_LENGTH = 1000
MAX_DEPTH = 32  # parentheses plus negations; keeps recursion far from Python's limit
MIN_PREFIX = 3

TEXT_FIELDS = ("title", "abstract", "author", "org")
EXACT_FIELDS = ("source", "id")
NUMERIC_FIELDS = ("upvotes", "comments")
FIELDS = TEXT_FIELDS + EXACT_FIELDS + NUMERIC_FIELDS
COMPARISONS = (">=", "<=", ">", "<", "=")
OPERATORS = ("AND", "OR", "NOT")


@dataclass(frozen=True, slots=True)
class Term:
    """A word as written; a word that analyses into several tokens (``self-supervised``) matches
    them in sequence, like a phrase. `field` None means title and abstract."""

    text: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words in sequence within one field value; `text` has its whitespace collapsed."""

    text: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Verbatim:
    """``="..."``: the words exactly as written, in sequence within one field value, compared
    without stemming; `text` has its whitespace collapsed."""

    text: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Prefix:
    """A word starting with `text` (the part before ``*``), compared before stemming."""

    text: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Exact:
    """``source:`` (a source name, case-insensitive) or ``id:`` (the canonical id)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Numeric:
    """``upvotes:>=20``: the paper reports the number and it satisfies the comparison."""

    field: str
    op: str
    value: int


@dataclass(frozen=True, slots=True)
class Not:
    child: Query


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Query, ...]


Leaf = Term | Phrase | Verbatim | Prefix | Exact | Numeric
Query = Leaf | Not | And | Or


class _Tok(NamedTuple):
    kind: str  # "word", "phrase", "verbatim" (="..."), "(", ")", "-", "eof"
    text: str
    pos: int
    end: int


_FIELD_RE = re.compile(r"([^\W\d_]+):")
_NUMERIC_RE = re.compile(r"(>=|<=|>|<|=)?(\d+)")
_BARE_UNSAFE_RE = re.compile(r'[\s()"*]')


def _lex(q: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
        elif c in "()":
            toks.append(_Tok(c, c, i, i + 1))
            i += 1
        elif c == '"':
            j = q.find('"', i + 1)
            if j < 0:
                raise RuleError("unterminated phrase (no closing \")", i)
            toks.append(_Tok("phrase", q[i + 1 : j], i, j + 1))
            i = j + 1
        elif c == "-":
            toks.append(_Tok("-", c, i, i + 1))
            i += 1
        elif c == "=" and q.startswith('"', i + 1):
            j = q.find('"', i + 2)
            if j < 0:
                raise RuleError("unterminated phrase (no closing \")", i + 1)
            toks.append(_Tok("verbatim", q[i + 2 : j], i, j + 1))
            i = j + 1
        else:
            j = i
            while j < n and not q[j].isspace() and q[j] not in '()"':
                j += 1
            if q.startswith('="', j - 1) and _FIELD_RE.fullmatch(q, i, j - 1):
                j -= 1  # title:="...": the field, then ="..." (only after a field name)
            toks.append(_Tok("word", q[i:j], i, j))
            i = j
    toks.append(_Tok("eof", "", n, n))
    return toks


class _Parser:
    def __init__(self, q: str) -> None:
        self.toks = _lex(q)
        self.i = 0
        self.depth = 0
        self.terms = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def is_op(self, t: _Tok, *ops: str) -> bool:
        return t.kind == "word" and t.text in ops

    def starts_unary(self, t: _Tok) -> bool:
        return t.kind in ("phrase", "verbatim", "(", "-") or (
            t.kind == "word" and t.text not in ("AND", "OR")
        )

    def parse_or(self, ctx: str | None) -> Query:
        items = [self.parse_and(ctx, None)]
        while self.is_op(self.peek(), "OR"):
            op = self.take()
            items.append(self.parse_and(ctx, op))
        return _flat(Or, items)

    def parse_and(self, ctx: str | None, after: _Tok | None) -> Query:
        items = [self.parse_unary(ctx, after)]
        while True:
            t = self.peek()
            if self.is_op(t, "AND"):
                self.take()
                items.append(self.parse_unary(ctx, t))
            elif self.starts_unary(t):
                items.append(self.parse_unary(ctx, None))
            else:
                return _flat(And, items)

    def parse_unary(self, ctx: str | None, after: _Tok | None) -> Query:
        t = self.peek()
        if self.is_op(t, "NOT") or t.kind == "-":
            self.take()
            nxt = self.peek()
            if t.kind == "-" and (nxt.pos != t.end or not self.starts_unary(nxt)):
                raise RuleError("'-' must be directly followed by a term", t.pos)
            self.enter(t.pos)
            child = self.parse_unary(ctx, t)
            self.depth -= 1
            return Not(child)
        return self.parse_atom(ctx, after)

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RuleError(f"rule nested more than {MAX_DEPTH} levels deep", pos)

    def leaf(self, node: Leaf, pos: int) -> Leaf:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise RuleError(f"a rule is limited to {MAX_TERMS} terms", pos)
        return node

    def parse_atom(self, ctx: str | None, after: _Tok | None) -> Query:
        t = self.take()
        if t.kind == "(":
            return self.group(t, ctx)
        if t.kind in ("phrase", "verbatim"):
            return self.leaf(_phrase(t.text, t.pos, ctx, t.kind == "verbatim"), t.pos)
        if t.kind == "word" and t.text not in ("AND", "OR"):
            return self.word(t, ctx)
        if after is not None:
            raise RuleError(f"missing term after '{after.text}'", after.pos)
        if t.kind == "word":
            raise RuleError(f"'{t.text}' needs a term before it", t.pos)
        raise RuleError("missing term", t.pos)

    def group(self, open_: _Tok, ctx: str | None) -> Query:
        if self.peek().kind == ")":
            raise RuleError("empty parentheses", open_.pos)
        if self.peek().kind == "eof":
            raise RuleError("unbalanced parenthesis", open_.pos)
        self.enter(open_.pos)
        body = self.parse_or(ctx)
        if self.take().kind != ")":
            raise RuleError("unbalanced parenthesis", open_.pos)
        self.depth -= 1
        return body

    def word(self, t: _Tok, ctx: str | None) -> Query:
        m = _FIELD_RE.match(t.text)
        if not m:
            return self.leaf(_word(t.text, t.pos, ctx), t.pos)
        name = m.group(1).lower()
        if name not in FIELDS:
            close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"fields are {', '.join(FIELDS)}"
            raise RuleError(f"unknown field '{m.group(1)}'", t.pos, hint=hint)
        if ctx is not None:
            raise RuleError(f"field '{name}:' inside '{ctx}:( ... )'", t.pos)
        value, vpos = t.text[m.end() :], t.pos + m.end()
        if name in NUMERIC_FIELDS:
            num = _NUMERIC_RE.fullmatch(value)
            if not num:
                raise RuleError(f"'{name}:' takes a comparison such as {name}:>=20", vpos)
            return self.leaf(Numeric(name, num.group(1) or "=", int(num.group(2))), t.pos)
        if value:
            return self.leaf(_word(value, vpos, name), t.pos)
        nxt = self.peek()
        if nxt.pos == t.end and nxt.kind == "(":
            return self.group(self.take(), name)
        if nxt.pos == t.end and nxt.kind in ("phrase", "verbatim"):
            self.take()
            return self.leaf(_phrase(nxt.text, nxt.pos, name, nxt.kind == "verbatim"), t.pos)
        raise RuleError(f"'{name}:' needs a value right after the colon", vpos)


def _flat(kind: type[And] | type[Or], items: list[Query]) -> Query:
    if len(items) == 1:
        return items[0]
    out: list[Query] = []
    for it in items:
        out.extend(it.children if isinstance(it, kind) else (it,))
    return kind(tuple(out))


def _phrase(text: str, pos: int, field: str | None, verbatim: bool = False) -> Leaf:
    collapsed = " ".join(text.split())
    if field in EXACT_FIELDS:
        if verbatim:
            raise RuleError(f"'{field}:' compares exactly already; write {field}:\"...\"", pos)
        if not collapsed:
            raise RuleError(f"empty value for '{field}:'", pos)
        return Exact(field, collapsed)
    if not words(collapsed):
        raise RuleError("empty phrase (no letters or digits)", pos)
    return Verbatim(collapsed, field) if verbatim else Phrase(collapsed, field)


def _word(text: str, pos: int, field: str | None) -> Leaf:
    star = text.find("*")
    if field in EXACT_FIELDS:
        if star >= 0:
            raise RuleError(f"'{field}:' takes an exact value, not a prefix", pos + star)
        return Exact(field, text)
    if star < 0:
        if not words(text):
            raise RuleError(f"'{text}' has no letters or digits", pos)
        return Term(text, field)
    if star != len(text) - 1:
        raise RuleError("'*' is only allowed at the end of a word", pos + star)
    ws = words(text[:-1])
    if len(ws) > 1:
        raise RuleError(f"a prefix must be a single word, not '{text}'", pos)
    if not ws or len(ws[0]) < MIN_PREFIX:
        hint = f"use at least {MIN_PREFIX} letters before the *"
        raise RuleError(f"prefix '{text}' is too short", pos, hint=hint)
    return Prefix(text[:-1], field)


def is_positive(node: Query) -> bool:
    """True when the rule has a term outside every negation (a rule needs at least one
    positive term). ``NOT a`` and ``-a -b`` fail; ``a OR NOT b`` passes (the engine checks such
    a rule against every paper, since it cannot be prefiltered)."""
    if isinstance(node, Not):
        return False
    if isinstance(node, And | Or):
        return any(is_positive(c) for c in node.children)
    return True


def _simple(q: str) -> Query | None:
    """`q`'s AST built without the parser when `q` has the plain shape (`plain`), else None."""
    groups = plain_groups(q)
    if groups is None:
        return None
    items: list[Query] = [Term(g[0]) if len(g) == 1 else Or(tuple(map(Term, g))) for g in groups]
    return items[0] if len(items) == 1 else And(tuple(items))


def parse(q: str) -> Query:
    """Parse rule text into its AST. Raises RuleError(message, position) on any malformed input."""
    if len(q) > MAX_LENGTH:
        raise RuleError(f"a rule is limited to {MAX_LENGTH} characters", MAX_LENGTH)
    simple = _simple(q)  # plain words only: never a colonless comparison
    return simple if simple is not None else _parse(q)


def _parse(q: str) -> Query:
    """`parse` by the recursive-descent parser alone (the fast path's reference)."""
    _refuse_colonless_numbers(q)
    p = _Parser(q)
    if p.peek().kind == "eof":
        raise RuleError("empty rule", 0)
    node = p.parse_or(None)
    t = p.peek()
    if t.kind == ")":
        raise RuleError("unbalanced parenthesis", t.pos)
    if t.kind != "eof":  # an OR/AND with nothing before it cannot remain here; keep a guard
        raise RuleError(f"unexpected '{t.text}'", t.pos)
    if not is_positive(node):
        raise RuleError("a rule needs at least one positive term", len(q) - len(q.lstrip()))
    return node


# `upvotes>=20` (no colon) would otherwise be two words that no paper contains: a rule that never
# fires without saying why. Outside double quotes only.
_COLONLESS = re.compile(
    r'"[^"]*"|(?<![\w:])(' + "|".join(NUMERIC_FIELDS) + r")(>=|<=|>|<|=)(\d+)\b",
    re.IGNORECASE,
)


def _refuse_colonless_numbers(q: str) -> None:
    for m in _COLONLESS.finditer(q):
        if m.group(1):
            field, op, n = m.group(1).lower(), m.group(2), m.group(3)
            hint = f"did you mean '{field}:{op}{n}'?"
            raise RuleError(f"'{m.group()}' is not a comparison", m.start(), hint=hint)


def _scoped(field: str | None, body: str) -> str:
    return f"{field}:{body}" if field else body


def leaf_text(node: Leaf) -> str:
    """A leaf in the printed syntax, with its field (``title:diffusion``, ``upvotes:>=20``)."""
    if isinstance(node, Term):
        return _scoped(node.field, node.text)
    if isinstance(node, Phrase):
        return _scoped(node.field, f'"{node.text}"')
    if isinstance(node, Verbatim):
        return _scoped(node.field, f'="{node.text}"')
    if isinstance(node, Prefix):
        return _scoped(node.field, node.text + "*")
    if isinstance(node, Exact):
        bare = node.value and not _BARE_UNSAFE_RE.search(node.value)
        return f"{node.field}:{node.value}" if bare else f'{node.field}:"{node.value}"'
    return f"{node.field}:{'' if node.op == '=' else node.op}{node.value}"


def to_text(node: Query) -> str:
    """The normalised printed form: explicit AND/OR/NOT, one space, fields on every leaf,
    parentheses around every nested group. Idempotent through `parse`."""
    if isinstance(node, Not):
        inner = to_text(node.child)
        return f"NOT ({inner})" if isinstance(node.child, And | Or) else f"NOT {inner}"
    if isinstance(node, And):
        return " AND ".join(
            f"({to_text(c)})" if isinstance(c, Or) else to_text(c) for c in node.children
        )
    if isinstance(node, Or):  # AND binds tighter, but an admin reads "(a AND b) OR c" faster
        return " OR ".join(
            f"({to_text(c)})" if isinstance(c, And) else to_text(c) for c in node.children
        )
    return leaf_text(node)


def leaves(node: Query) -> list[Leaf]:
    """The leaves of `node`, left to right."""
    if isinstance(node, Not):
        return leaves(node.child)
    if isinstance(node, And | Or):
        return [leaf for c in node.children for leaf in leaves(c)]
    return [node]

