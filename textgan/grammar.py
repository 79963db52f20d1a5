"""A small probabilistic grammar of English-like sentences: a readable corpus with exact grammaticality.

Samples ("the small dog saw a red ball in the park .") are easy to read in a demo,
and whether generated text is grammatical is decided exactly by parsing it, which
no BLEU score can do. Verbs are in the past tense so subject-verb agreement never
arises; determiners agree with singular or plural nouns, and subjects are animate.
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from nltk.grammar import PCFG, Nonterminal, ProbabilisticProduction
from nltk.parse import BottomUpLeftCornerChartParser

MAX_DEPTH = 11  # derivation depth of a sample; bounds relative clauses and PPs so sampling terminates

# Structural rules: LHS -> (RHS, probability); quoted symbols are words.
RULES = """
S -> CL '.' [0.86] | CL Conj CL '.' [0.14]
CL -> Subj VP [1.0]
Subj -> NPA [0.88] | Name [0.12]
NPA -> DetS NomA [0.56] | DetP NomAP [0.2] | DetS NomA PP [0.1] | DetS NomA RC [0.1] | DetP NomAP RC [0.04]
NPI -> DetS NomI [0.6] | DetP NomIP [0.25] | DetS NomI PP [0.15]
NomA -> NA [0.6] | AdjA NA [0.25] | Size NA [0.15]
NomAP -> NAP [0.6] | AdjA NAP [0.25] | Size NAP [0.15]
NomI -> NI [0.45] | AdjI NI [0.2] | Color NI [0.2] | Size Color NI [0.15]
NomIP -> NIP [0.45] | AdjI NIP [0.2] | Color NIP [0.2] | Size Color NIP [0.15]
RC -> 'that' VP [1.0]
VP -> Vi [0.2] | Vi PP [0.15] | Vi Adv [0.07] | VtAny NPA [0.09] | VtAny NPI [0.09] | VtAny Name [0.04]
VP -> VtA NPA [0.1] | VtI NPI [0.12] | VtI NPI PP [0.06] | VtA NPA Adv [0.04] | VtI NPI Adv [0.04]
PP -> P Place [1.0]
Place -> DetL NPlace [0.7] | DetL AdjL NPlace [0.3]
"""

# Preterminals: each word equally likely unless weighted.
LEXICON: dict[str, str | dict[str, float]] = {
    "DetS": {"the": 0.45, "a": 0.3, "this": 0.05, "that": 0.04, "my": 0.05, "his": 0.04, "her": 0.04, "every": 0.03},
    "DetP": {"the": 0.4, "some": 0.15, "two": 0.1, "three": 0.05, "many": 0.08, "these": 0.06, "those": 0.06,
             "my": 0.1},
    "DetL": {"the": 0.7, "a": 0.15, "my": 0.05, "her": 0.05, "his": 0.05},
    "NA": "dog cat boy girl man woman teacher doctor child bird farmer student king queen baker horse rabbit "
          "friend pilot nurse",
    "NAP": "dogs cats boys girls men women teachers doctors children birds farmers students kings queens bakers "
           "horses rabbits friends pilots nurses",
    "NI": "ball book box cup car hat letter key chair table picture bag flower kite bottle coin toy basket",
    "NIP": "balls books boxes cups cars hats letters keys chairs tables pictures bags flowers kites bottles coins "
           "toys baskets",
    "NPlace": "park garden house kitchen street forest school river city market room field library village shop "
              "station beach hill",
    "Name": "anna tom maria sam lucy ben emma jack",
    "AdjA": "happy lazy clever tired friendly young sleepy gentle busy quiet noisy famous brave kind hungry",
    "AdjI": "new heavy broken shiny cheap pretty strange lovely dusty wooden",
    "AdjL": "quiet busy dark sunny big small crowded cold green",
    "Size": "small big little tall tiny large",
    "Color": "red blue green brown white black yellow pink",
    "Vi": "slept ran smiled waited arrived left sang jumped laughed danced walked played sat stopped",
    "VtAny": "saw found liked watched noticed wanted painted",
    "VtA": "chased followed helped called met hugged visited thanked",
    "VtI": "carried dropped held bought lost kept moved hid took cleaned",
    "Adv": "quickly slowly quietly happily again yesterday today carefully early later",
    "P": "in near behind beside by outside",
    "Conj": "and but so",
}


@dataclass(frozen=True)
class _Tables:
    grammar: PCFG
    words: frozenset[str]  # every terminal; other tokens cannot parse
    options: dict[Nonterminal, list[tuple[ProbabilisticProduction, int]]]  # productions with their min height


def _productions() -> list[ProbabilisticProduction]:
    prods = list(PCFG.fromstring(RULES).productions())
    for lhs, words in LEXICON.items():
        weights = dict.fromkeys(words.split(), 1.0) if isinstance(words, str) else words
        total = sum(weights.values())
        prods += [ProbabilisticProduction(Nonterminal(lhs), [w], prob=p / total) for w, p in weights.items()]
    return prods


def _min_heights(prods: list[ProbabilisticProduction]) -> dict[Nonterminal, int]:
    """Least derivation height of each nonterminal (a word has height 0), by fixpoint."""
    height: dict[Nonterminal, int] = {}
    changed = True
    while changed:
        changed = False
        for p in prods:
            kids = [height.get(s) if isinstance(s, Nonterminal) else 0 for s in p.rhs()]
            if None not in kids and 1 + max(kids) < height.get(p.lhs(), 1 << 30):
                height[p.lhs()] = 1 + max(kids)
                changed = True
    return height


@functools.cache
def _tables() -> _Tables:
    """Built on first use, not at import."""
    prods = _productions()
    grammar = PCFG(Nonterminal("S"), prods)  # checks that each LHS's probabilities sum to 1
    height = _min_heights(prods)
    options: dict[Nonterminal, list] = {}
    for p in prods:
        h = 1 + max(height[s] if isinstance(s, Nonterminal) else 0 for s in p.rhs())
        options.setdefault(p.lhs(), []).append((p, h))
    words = frozenset(s for p in prods for s in p.rhs() if isinstance(s, str))
    return _Tables(grammar=grammar, words=words, options=options)


def _expand(symbol, budget: int, rng: random.Random, tables: _Tables, out: list[str],
            trace: list | None = None, parent: Nonterminal | None = None) -> None:
    """Append one derivation of `symbol`, choosing only productions that fit in `budget` levels;
    `trace` (when given) receives each (parent symbol, production) in the order chosen."""
    if isinstance(symbol, str):
        out.append(symbol)
        return
    fits = [(p, h) for p, h in tables.options[symbol] if h <= budget]  # never empty: min height <= budget
    prod = rng.choices([p for p, _ in fits], weights=[p.prob() for p, _ in fits])[0]
    if trace is not None:
        trace.append((parent, prod))
    for child in prod.rhs():
        _expand(child, budget - 1, rng, tables, out, trace, symbol)


def sample_grammar(num: int, seed: int) -> list[list[str]]:
    """`num` sentences as lowercase token lists ending in ".", reproducible for `seed`."""
    rng = random.Random(seed)
    tables = _tables()
    out: list[list[str]] = []
    for _ in range(num):
        tokens: list[str] = []
        _expand(tables.grammar.start(), MAX_DEPTH, rng, tables, tokens)
        out.append(tokens)
    return out


# Class labels of the grammar's sentences (generator.conditional): what the main clause's verb
# takes, read off the first clause's VP production. Readable from the sentence (the verb and its
# object's noun), so a classifier of real sentences can check generated ones.
LABELS = ("no_object", "person_object", "thing_object")
_OBJECT_LABEL = {"NPA": "person_object", "Name": "person_object", "NPI": "thing_object"}


def _label(trace: list) -> str:
    """The class of one derivation: the object of the VP whose parent is the first clause."""
    vp = next(prod for parent, prod in trace if parent == Nonterminal("CL") and prod.lhs() == Nonterminal("VP"))
    objects = [_OBJECT_LABEL[str(s)] for s in vp.rhs() if str(s) in _OBJECT_LABEL]
    return objects[0] if objects else "no_object"


def sample_grammar_labelled(num: int, seed: int) -> tuple[list[list[str]], list[str]]:
    """`sample_grammar(num, seed)`'s sentences (the same ones) and each one's class (LABELS)."""
    rng = random.Random(seed)
    tables = _tables()
    sentences: list[list[str]] = []
    labels: list[str] = []
    for _ in range(num):
        tokens: list[str] = []
        trace: list = []
        _expand(tables.grammar.start(), MAX_DEPTH, rng, tables, tokens, trace)
        sentences.append(tokens)
        labels.append(_label(trace))
    return sentences, labels


# Sentence pairs for generator.condition=sentence: a source sentence and another sentence about the
# same subject (the first animate noun or name, which heads the subject of every sentence the
# grammar makes), so whether a generated sentence follows its source is read off exactly.
SUBJECTS = frozenset(" ".join(str(LEXICON[kind]) for kind in ("NA", "NAP", "Name")).split())


def subject_of(tokens: list[str]) -> str | None:
    """The subject head of a sentence of the grammar: its first animate noun or name (None if none)."""
    return next((token for token in tokens if token in SUBJECTS), None)


def sample_grammar_pairs(num: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """`num` sentences of the grammar (`sample_grammar(num, seed)`'s) and for each a source: another
    sentence of the grammar with the same subject head, drawn from a pool of its own seed."""
    targets = sample_grammar(num, seed)
    rng = random.Random(seed + 7919)
    by_subject: dict[str, list[list[str]]] = {}
    for sentence in sample_grammar(num + 2000, seed + 104729):
        by_subject.setdefault(subject_of(sentence), []).append(sentence)
    tables = _tables()
    sources = []
    for target in targets:
        head = subject_of(target)
        while head not in by_subject:  # a subject the pool missed: draw until one has it
            tokens: list[str] = []
            _expand(tables.grammar.start(), MAX_DEPTH, rng, tables, tokens)
            by_subject.setdefault(subject_of(tokens), []).append(tokens)
        sources.append(rng.choice(by_subject[head]))
    return targets, sources


@functools.cache
def _parser() -> BottomUpLeftCornerChartParser:
    return BottomUpLeftCornerChartParser(_tables().grammar)


def _parses(tokens: tuple[str, ...]) -> bool:
    """Whether the grammar derives `tokens` (at any depth); out-of-grammar words simply fail."""
    if not tokens or not _tables().words.issuperset(tokens):
        return False
    chart = _parser().chart_parse(list(tokens))
    spans = chart.select(start=0, end=len(tokens), lhs=_tables().grammar.start(), is_complete=True)
    return next(iter(spans), None) is not None  # a complete S edge over all tokens; no trees built


def grammaticality(samples: list[list[str]]) -> float:
    """Share of samples (token lists) the grammar parses; 0.0 for no samples."""
    if not samples:
        return 0.0
    seen: dict[tuple[str, ...], bool] = {}
    hits = 0
    for sample in samples:
        key = tuple(sample)
        if key not in seen:
            seen[key] = _parses(key)
        hits += seen[key]
    return hits / len(samples)
