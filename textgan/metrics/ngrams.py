"""Clipped n-gram matches counted with numpy sorts instead of a Python Counter per sentence.

Shapes: P token positions of all sentences together, S sentences, n the n-gram order.
An n-gram gets an exact integer code, order by order: the code of its first n - 1 tokens (dense,
0 .. distinct (n-1)-grams - 1) times the number of distinct tokens, plus its last token, made
dense again by np.unique. Counts per (sentence, n-gram) are run lengths of the sorted pairs. Every
count is an integer, so the matches equal those of bleu.py's Counter loops exactly; only the
time differs (a 10,000-sentence Self-BLEU in a fraction of a second instead of seconds).
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


class Encoded:
    """Sentences as one flat array of token ids (P,), with each position's sentence (P,) and the
    sentence lengths (S,). Tokens not in `tokens` (a token -> id dict, grown unless frozen) get
    -1: they match nothing."""

    def __init__(self, sentences: Sequence[Sequence[Hashable]], tokens: dict, grow: bool):
        ids: list[int] = []
        for sent in sentences:
            for tok in sent:
                code = tokens.get(tok)
                if code is None:
                    code = -1
                    if grow:
                        code = tokens[tok] = len(tokens)
                ids.append(code)
        self.lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
        self.flat = np.asarray(ids, dtype=np.int64)
        self.sentence = np.repeat(np.arange(len(sentences), dtype=np.int64), self.lengths)
        starts = np.cumsum(self.lengths) - self.lengths
        self.room = np.repeat(starts + self.lengths, self.lengths) - np.arange(self.flat.size)  # tokens from p to the end


def _runs(sentence: np.ndarray, code: np.ndarray):
    """Distinct (sentence, code) pairs and how often each occurs."""
    order = np.lexsort((code, sentence))
    s, c = sentence[order], code[order]
    new = np.ones(s.size, dtype=bool)
    new[1:] = (s[1:] != s[:-1]) | (c[1:] != c[:-1])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, s.size))
    return s[starts], c[starts], counts


class GramTable:
    """The n-grams (orders 1..max_n) of a set of sentences, coded: per order the sorted distinct
    raw codes (`keys`), and per position the dense code of the n-gram starting there (-1 where
    fewer than n tokens remain, or where it holds a token or prefix the table lacks)."""

    def __init__(self, enc: Encoded, max_n: int, base: int, table: GramTable | None = None):
        self.base, self.keys, self.codes = base, [], []
        prev = None
        for n in range(1, max_n + 1):
            ok = enc.room >= n
            last = np.full(enc.flat.size, -1, dtype=np.int64)
            last[ok] = enc.flat[np.flatnonzero(ok) + n - 1]
            if prev is None:
                raw = last
            else:
                raw = np.where((prev >= 0) & (last >= 0), prev * base + last, -1)
            valid = ok & (raw >= 0)
            if table is None:
                keys, inverse = np.unique(raw[valid], return_inverse=True)
                dense = np.full(raw.size, -1, dtype=np.int64)
                dense[valid] = inverse
            else:
                keys = table.keys[n - 1]
                dense = np.full(raw.size, -1, dtype=np.int64)
                where = np.searchsorted(keys, raw[valid])
                found = where < keys.size
                found[found] = keys[where[found]] == raw[valid][found]
                dense[np.flatnonzero(valid)[found]] = where[found]
            self.keys.append(keys)
            self.codes.append(dense)
            prev = dense


class RefCounts:
    """Each reference n-gram's largest count in any one reference (BLEU's clipping bound)."""

    def __init__(self, references: Sequence[Sequence[Hashable]], max_n: int):
        self.tokens: dict = {}
        enc = Encoded(references, self.tokens, grow=True)
        self.max_n, self.base = max_n, len(self.tokens) + 1
        self.table = GramTable(enc, max_n, self.base)
        self.best = []
        for n in range(max_n):
            code = self.table.codes[n]
            keep = code >= 0
            _, c, counts = _runs(enc.sentence[keep], code[keep])
            best = np.zeros(self.table.keys[n].size, dtype=np.int64)
            np.maximum.at(best, c, counts)
            self.best.append(best)

    def numerators(self, hypotheses: Sequence[Sequence[Hashable]], top_n: int) -> np.ndarray:
        """Clipped matches (S, top_n) of each hypothesis, orders 1..top_n."""
        enc = Encoded(hypotheses, self.tokens, grow=False)
        table = GramTable(enc, top_n, self.base, table=self.table)
        out = np.zeros((len(hypotheses), top_n), dtype=np.int64)
        for n in range(top_n):
            code = table.codes[n]
            keep = code >= 0
            s, c, counts = _runs(enc.sentence[keep], code[keep])
            out[:, n] = np.bincount(s, weights=np.minimum(counts, self.best[n][c]), minlength=len(hypotheses))
        return out


def leave_one_out_numerators(samples: Sequence[Sequence[Hashable]], top_n: int) -> np.ndarray:
    """Clipped matches (S, top_n) of each sample against all the others: an n-gram's bound is its
    largest count in another sample, the runner-up count for the sample holding the largest."""
    tokens: dict = {}
    enc = Encoded(samples, tokens, grow=True)
    table = GramTable(enc, top_n, len(tokens) + 1)
    out = np.zeros((len(samples), top_n), dtype=np.int64)
    for n in range(top_n):
        code = table.codes[n]
        keep = code >= 0
        s, c, counts = _runs(enc.sentence[keep], code[keep])
        order = np.lexsort((-counts, c))  # by code, largest count first
        sc, cc = c[order], counts[order]
        first = np.ones(sc.size, dtype=bool)
        first[1:] = sc[1:] != sc[:-1]
        top = np.zeros(table.keys[n].size, dtype=np.int64)
        holder = np.full(table.keys[n].size, -1, dtype=np.int64)
        runner_up = np.zeros(table.keys[n].size, dtype=np.int64)
        top[sc[first]] = cc[first]
        holder[sc[first]] = s[order][first]
        second = np.zeros(sc.size, dtype=bool)
        second[1:] = first[:-1] & ~first[1:]  # the second entry of a code's group
        runner_up[sc[second]] = cc[second]
        clip = np.where(holder[c] == s, runner_up[c], top[c])
        out[:, n] = np.bincount(s, weights=np.minimum(counts, clip), minlength=len(samples))
    return out
