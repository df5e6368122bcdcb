"""What a rule matches: one table, each row checked by the index and by brute force."""

from __future__ import annotations

from typing import Any

import pytest

from paperalerts.core.papers import Paper
from paperalerts.core.rules import compile_rules, match_brute_force


def paper(title: str = "", abstract: str = "", **kw: Any) -> Paper:
    """A paper with just the fields a row needs (source hf-api unless given)."""
    kw.setdefault("source", "hf-api")
    return Paper(id=kw.pop("id", "2401.00001"), title=title, abstract=abstract, **kw)


def matches(rule: str, p: Paper) -> bool:
    """Whether `rule` matches `p`; the index and the oracle must agree, explanation included."""
    rules = [(1, rule)]
    found = compile_rules(rules).match([p])
    assert found == match_brute_force([p], rules)
    assert compile_rules(rules).matching_rules(p) == [m.rule for m in found]
    return bool(found)


CASES: list[tuple[str, str, Paper, bool]] = [
    # stemming, both sides
    ("stem: singular rule, plural text", "transformer", paper("Scaling Transformers"), True),
    ("stem: plural rule, singular text", "Transformers", paper("", "a transformer model"), True),
    ("stem: different stems", "transformer", paper("transport theory"), False),
    ("case-insensitive", "DIFFUSION", paper("diffusion models"), True),
    # hyphens and punctuation split words; a hyphenated rule word is a sequence
    ("hyphen in rule, space in text", "self-supervised", paper("", "self supervised"), True),
    ("space in rule, hyphen in text", '"self supervised"', paper("Self-Supervised Learning"), True),
    ("hyphen both sides", "self-supervised", paper("Self-supervised ViTs"), True),
    ("hyphenated rule keeps word order", "self-supervised", paper("supervised by self"), False),
    ("no compounding", "selfsupervised", paper("self-supervised"), False),
    ("punctuation ignored", "gpt-4", paper("Evaluating GPT 4 on maths"), True),
    ("slash splits", '"1 2 tokens"', paper("An Image is Worth 1/2 Tokens"), True),
    # accents, ligatures, letters NFKD keeps
    ("accent in rule", "café", paper("Cafe culture"), True),
    ("accent in text", "cafe", paper("Café culture"), True),
    ("diaeresis", "naive", paper("", "a naïve Bayes baseline"), True),
    ("ligature", "fine-tuning", paper("Efficient ﬁne-tuning"), True),
    # field scoping; default fields are title and abstract
    ("default covers title", "diffusion", paper("Diffusion Models", "other"), True),
    ("default covers abstract", "diffusion", paper("Other", "latent diffusion"), True),
    ("default excludes authors", "smith", paper("x", "y", authors=("Anna Smith",)), False),
    ("title: only title", "title:diffusion", paper("Other", "latent diffusion"), False),
    ("title: matches title", "title:diffusion", paper("Diffusion Models"), True),
    ("abstract: only abstract", "abstract:diffusion", paper("Diffusion", "other"), False),
    ("org: matches organization", "org:meta", paper("x", organization="Meta AI"), True),
    ("org: without organization", "org:meta", paper("Meta-learning"), False),
    ("field group", "title:(video OR audio)", paper("Audio LMs", "video"), True),
    ("field group scopes all", "title:(video OR audio)", paper("LMs", "video audio"), False),
    # phrases: adjacent, in order, within one field value
    ("phrase adjacent", '"graph transformer"', paper("Graph Transformer Networks"), True),
    ("phrase not adjacent", '"graph transformer"', paper("Graph neural Transformer"), False),
    ("phrase order", '"graph transformer"', paper("Transformer graph"), False),
    ("phrase stems", '"graph transformers"', paper("A graph transformer"), True),
    ("phrase not across title and abstract", '"graph transformer"',
     paper("Learning on a graph", "Transformer models scale."), False),
    ("author phrase", 'author:"yann lecun"', paper("x", authors=("Yann LeCun",)), True),
    ("author phrase order", 'author:"lecun yann"', paper("x", authors=("Yann LeCun",)), False),
    ("phrase not across two authors", 'author:"smith yann"',
     paper("x", authors=("John Smith", "Yann LeCun")), False),
    ("author word in any author", "author:lecun", paper("x", authors=("A B", "Yann LeCun")), True),
    # authors with accents (names as in the HF fixtures)
    ("author accent", "author:tramer", paper("x", authors=("Florian Tramèr",)), True),
    ("author cedilla", 'author:"hugo laurencon"', paper("x", authors=("Hugo Laurençon",)), True),
    ("author ø", "author:bjorklund", paper("x", authors=("Sunniva Maria Stordal Bjørklund",)),
     True),
    ("author ł in rule", "author:Łukasz", paper("x", authors=("Lukasz Kaiser",)), True),
    # boolean logic: implicit AND, OR, NOT, -, precedence NOT > AND > OR
    ("implicit AND needs both", "diffusion model", paper("Diffusion for audio"), False),
    ("implicit AND both present", "diffusion model", paper("Diffusion", "a model"), True),
    ("AND over OR: lone OR branch", "audio OR diffusion model", paper("audio"), True),
    ("AND over OR: half the AND", "audio OR diffusion model", paper("diffusion"), False),
    ("parentheses regroup", "(audio OR diffusion) model", paper("audio"), False),
    ("minus excludes", "diffusion -video", paper("Video diffusion"), False),
    ("minus keeps others", "diffusion -video", paper("Image diffusion"), True),
    ("NOT binds tightest", "diffusion NOT video OR audio", paper("audio video"), True),
    ("NOT of a group", "diffusion NOT (video OR audio)", paper("audio diffusion"), False),
    ("negation under OR", "diffusion OR NOT video", paper("graphs"), True),
    ("negation under OR, negated present", "diffusion OR NOT video", paper("video"), False),
    # operators are upper-case; lower-case ones are words
    ("upper-case OR", "diffusion OR video", paper("video"), True),
    ("lower-case or is a word", "diffusion or video", paper("video"), False),
    ("lower-case words all required", "diffusion or video", paper("diffusion or video"), True),
    ("lower-case not is a word", "not video", paper("video"), False),
    # stemming stays for every form written today; ="..." is the exact word form
    ("a word is stemmed", "transformer", paper("Transformed features"), True),
    ("a quoted word is stemmed", '"transformer"', paper("Transformed features"), True),
    ("a scoped word is stemmed", "title:transformer", paper("Transformed features"), True),
    ("=word (no quotes) is still the stemmed word", "=transformer", paper("Transformed"), True),
    ("exact word form is not stemmed", '="transformer"', paper("Transformed features"), False),
    ("exact word form, plural", '="transformer"', paper("Transformers rule"), False),
    ("exact word form matches the word", '="transformer"', paper("A Transformer!"), True),
    ("exact word form ignores case, accents", '="cafe"', paper("CAFÉ of Paris"), True),
    ("exact phrase in sequence", '="graph transformer"', paper("Graph Transformer nets"), True),
    ("exact phrase not stemmed", '="graph transformer"', paper("graph transformers"), False),
    ("exact form scoped", 'abstract:="transformer"', paper("transformer", "none"), False),
    ("exact form negated", 'graph -="transformers"', paper("graph transformer"), True),
    # prefixes: matched against the words before stemming
    ("prefix", "diffus*", paper("Diffusion Models"), True),
    ("prefix before stemming", "diffusio*", paper("Diffusion"), True),
    ("prefix of an inflection", "modelli*", paper("Modelling language"), True),
    ("prefix is not stemmed", "transformers*", paper("A transformer"), False),
    ("prefix of a word only", "fusion*", paper("Diffusion"), False),
    ("prefix with accents", "cafe*", paper("Cafés of Paris"), True),
    # numeric filters; a missing number never satisfies one (so its negation holds)
    ("numeric >= at the bound", "upvotes:>=20", paper("x", upvotes=20), True),
    ("numeric >= below", "upvotes:>=20", paper("x", upvotes=19), False),
    ("numeric missing", "upvotes:>=20", paper("x"), False),
    ("numeric bare means =", "comments:0", paper("x", comments=0), True),
    ("numeric >", "comments:>5", paper("x", comments=5), False),
    ("numeric <", "upvotes:<5", paper("x", upvotes=4), True),
    ("numeric <=", "upvotes:<=5", paper("x", upvotes=6), False),
    ("numeric with a word", "diffusion upvotes:>10", paper("diffusion", upvotes=11), True),
    ("NOT numeric, missing", "diffusion NOT upvotes:>5", paper("diffusion"), True),
    ("NOT numeric, above", "diffusion NOT upvotes:>5", paper("diffusion", upvotes=9), False),
    ("NOT numeric, below", "diffusion NOT upvotes:>5", paper("diffusion", upvotes=2), True),
    # source: names (Paper.source and extra["sources"]) exactly, case-insensitive; id: exactly
    ("source kind", "source:hf-api", paper("x"), True),
    ("source from extra", "source:HF-Trending", paper("x", extra={"sources": ["hf-trending"]}),
     True),
    ("source is exact", "source:hf", paper("x"), False),
    ("id", "id:2401.00001", paper("x"), True),
    ("id with a version", "id:2401.00001v3", paper("x"), True),
    ("id is exact", "id:2401.0000", paper("x"), False),
    ("a bare id searches the text", "2401.00001", paper("x"), False),
]


@pytest.mark.parametrize(("rule", "p", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rule_semantics(rule: str, p: Paper, expected: bool) -> None:
    """Each row pins one rule of the language's semantics; the index and brute force agree on it."""
    assert matches(rule, p) is expected
