"""Tokenizer, vocabulary, encoded datasets and batching.

Shapes: N sentences, T = max_len tokens per sequence (EOS included, padding after).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from textgan.errors import UserError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


class DataError(UserError):
    """A data file or vocabulary the user gave cannot be used."""


def tokenize(line: str, tokenizer: str = "whitespace", lowercase: bool = True) -> list[str]:
    """Split one sentence; `nltk` is word_tokenize without the punkt model (preserve_line)."""
    line = line.strip()
    if lowercase:
        line = line.lower()
    if tokenizer == "nltk":
        from nltk.tokenize import word_tokenize

        return word_tokenize(line, preserve_line=True)
    return line.split()


def read_lines(path: str | Path) -> list[str]:
    """Non-empty stripped lines of a UTF-8 text file, with clear errors for unusable files."""
    return _read_text(Path(path))[1]


def _read_text(path: Path) -> tuple[bytes, list[str]]:
    """The file's bytes and its non-empty stripped lines (read_lines' checks)."""
    if not path.is_file():
        raise DataError(f"data file {path} not found; check data.root and the file name "
                        "(or fetch it with `textgan data get`)")
    raw = path.read_bytes()
    if b"\0" in raw[:65536]:
        raise DataError(f"data file {path} looks binary (NUL bytes); give a UTF-8 text file, one sentence per line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"data file {path} is not UTF-8 (byte {err.start}); re-encode it as UTF-8") from None
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise DataError(f"data file {path} has no sentences; give one sentence per line")
    return raw, lines


def read_sentences(path: str | Path, tokenizer: str, lowercase: bool) -> list[list[str]]:
    """A text file's sentences as token lists (read_lines, then tokenize); nltk's tokens come
    from the user's cache when this file was tokenized alike before (textgan.cache)."""
    raw, lines = _read_text(Path(path))

    def tokens() -> list[list[str]]:
        return [tokenize(line, tokenizer, lowercase) for line in lines]

    if tokenizer != "nltk":  # str.split: faster than reading a cache
        return tokens()
    from textgan.cache import cached_tokens

    return cached_tokens(raw, len(lines), f"nltk {nltk_version()} lowercase={lowercase}", tokens)


def nltk_version() -> str:
    """nltk.__version__, read from the installed package's metadata: importing nltk takes 1-2 s
    (it loads most of its submodules, and scipy), which a cached tokenization never needs."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nltk")
    except PackageNotFoundError:  # no metadata (a vendored copy): ask the module itself
        import nltk

        return nltk.__version__


class Vocab:
    """Token <-> id map; ids 0..3 are <pad>, <bos>, <eos>, <unk>."""

    def __init__(self, tokens: list[str]):
        if list(tokens[: len(SPECIALS)]) != list(SPECIALS):
            raise DataError("vocabulary must start with " + ", ".join(SPECIALS))
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise DataError("vocabulary has duplicate tokens; rebuild it from the training file")

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, sentences: list[list[str]], min_freq: int = 1, max_size: int = 0) -> Vocab:
        """Most frequent first, ties by first appearance, so a build is reproducible."""
        counts = Counter(t for s in sentences for t in s)
        kept = [t for t, c in counts.most_common() if c >= min_freq and t not in SPECIALS]
        if max_size:
            kept = kept[:max_size]
        return cls(list(SPECIALS) + kept)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.stoi.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: list[int]) -> list[str]:
        """Tokens up to the first EOS; pad and bos are dropped."""
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i])
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.itos, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        try:
            tokens = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"vocabulary {path} cannot be read ({err.__class__.__name__}); "
                            "use the vocab.json written into the run folder") from None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(f"vocabulary {path} is not a JSON list of tokens")
        return cls(tokens)


@dataclass
class Encoded:
    """A padded id matrix with lengths; length counts EOS when it fits."""

    tokens: torch.Tensor  # (N, T) long
    lengths: torch.Tensor  # (N,) long
    truncated: int  # sentences cut to max_len
    dropped: int  # sentences left out because they were longer than max_len
    labels: torch.Tensor | None = None  # (N,) long class ids of a labelled corpus, else None


def encode(sentences: list[list[str]], vocab: Vocab, max_len: int, policy: str = "truncate",
           add_eos: bool = True, labels: list[int] | None = None) -> Encoded:
    """Ids + EOS, padded to max_len; longer sentences are truncated or dropped per `policy`.
    `labels`: each sentence's class id, kept aligned (a dropped sentence drops its label)."""
    rows, lengths, kept, truncated, dropped = [], [], [], 0, 0
    for i, sent in enumerate(sentences):
        ids = vocab.encode(sent) + ([vocab.eos_id] if add_eos else [])
        if len(ids) > max_len:
            if policy == "drop":
                dropped += 1
                continue
            truncated += 1
            ids = ids[:max_len]
        lengths.append(len(ids))
        kept.append(i)
        rows.append(ids + [vocab.pad_id] * (max_len - len(ids)))
    if not rows:
        raise DataError(f"every sentence is longer than data.max_len={max_len}; raise max_len "
                        "or set data.long_policy=truncate")
    label_ids = None if labels is None else torch.tensor([labels[i] for i in kept], dtype=torch.long)
    return Encoded(torch.tensor(rows, dtype=torch.long), torch.tensor(lengths, dtype=torch.long),
                   truncated, dropped, label_ids)


def read_labels(path: str | Path, sentences: int, sentence_path: str | Path) -> list[str]:
    """A label file's labels (one per non-empty line), which must number `sentences`, the
    non-empty lines of `sentence_path` they label."""
    labels = read_lines(path)
    if len(labels) != sentences:
        raise DataError(f"label file {path} has {len(labels)} labels but {sentence_path} has {sentences} "
                        "sentences; give one label per non-empty line, line i labelling sentence i")
    return labels


def oov_share(sentences: list[list[str]], vocab: Vocab) -> float:
    """Share of the tokens of `sentences` that `vocab` lacks (each would be read as <unk>)."""
    total = sum(map(len, sentences))
    return sum(t not in vocab.stoi for s in sentences for t in s) / total if total else 0.0


def check_lengths(sentences: list[list[str]], ceiling: int, path: str | Path) -> None:
    """Sentences of more than `ceiling` tokens are an error, reported before any model is built:
    one malformed line would otherwise set an automatic max_len that no memory holds."""
    if not ceiling:
        return
    lengths = [len(s) for s in sentences]
    longest = max(range(len(lengths)), key=lengths.__getitem__)
    if lengths[longest] <= ceiling:
        return
    over = sum(n > ceiling for n in lengths)
    start = " ".join(sentences[longest][:6])
    raise DataError(f"{path}: {over} sentence(s) longer than data.max_len_ceiling={ceiling} tokens, the longest "
                    f"sentence {longest + 1} with {lengths[longest]} ({start!r} ...); fix or remove those lines, "
                    f"or set data.max_len=N (data.long_policy truncates or drops longer ones), or raise "
                    "data.max_len_ceiling")


def banned_ids(vocab: Vocab, add_eos: bool) -> list[int]:
    """Ids the generator never emits: pad and bos always; eos and unk too for fixed-length data."""
    return [vocab.pad_id, vocab.bos_id] + ([] if add_eos else [vocab.eos_id, vocab.unk_id])


def batches(num: int, batch_size: int, generator: torch.Generator, drop_last: bool = True):
    """Yield index tensors of one shuffled epoch; the order depends only on `generator`."""
    order = torch.randperm(num, generator=generator)
    stop = num - num % batch_size if drop_last and num >= batch_size else num
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write next to the target, fsync, rename: a crash leaves the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
