"""Turn the data config into encoded train/test (and validation) sets, from files or a built-in corpus.

Built-in corpora need no download: the SeqGAN-style oracle LSTM (its samples are
the data and it scores generated text, NLL_oracle) and a small English-like PCFG
(its samples are readable and their grammaticality is exact).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from textgan.config import DataConfig
from textgan.data import (SPECIALS, DataError, Encoded, Vocab, banned_ids, check_lengths, encode, oov_share,
                          read_labels, read_sentences)


@dataclass
class Corpus:
    vocab: Vocab
    train: Encoded
    test: Encoded
    test_sentences: list[list[str]]  # BLEU references, as tokens
    max_len: int  # T: sequence length the generator produces
    add_eos: bool  # False for the oracle, whose sequences have a fixed length
    banned: list[int]  # ids the generator never emits
    oracle: object | None = None  # textgan.oracle.OracleLSTM for source=oracle
    source: str = "files"
    valid: Encoded | None = None  # validation split: data.valid's file, or data.valid_frac of the training sentences
    valid_sentences: list[list[str]] | None = None
    train_oov: float = 0.0  # share of the training tokens outside a vocabulary given to `prepare` (<unk>)
    # class names of a labelled corpus (data.train_labels, or the grammar's LABELS), in class-id
    # order; each split's Encoded.labels holds the ids. None: unlabelled
    label_names: list[str] | None = None
    # a paired corpus's source sentences (generator.condition=sentence): each split's Encoded.labels
    # holds, for each sentence, the row of its source in the same split here. None: unpaired
    sources: Sources | None = None

    @property
    def truncated(self) -> int:
        """Sentences cut to max_len, over every split (data.long_policy truncate)."""
        return sum(s.truncated for s in self._splits())

    @property
    def dropped(self) -> int:
        """Sentences left out for being longer than max_len, over every split (long_policy drop)."""
        return sum(s.dropped for s in self._splits())

    def _splits(self) -> list[Encoded]:
        return [self.train, self.test] + ([self.valid] if self.valid is not None else [])

    @property
    def eval_split(self) -> str:
        """The split training-time evaluations score: "valid" where there is one, else "test"."""
        return "test" if self.valid is None else "valid"

    def scored_on(self, split: str) -> Corpus:
        """This corpus with `split`'s sentences in the test fields, which every metric scores
        against (BLEU references, NLL_gen), so one evaluation code path serves both splits."""
        if split == "test":
            return self
        if self.valid is None:
            raise DataError("this corpus holds out no validation split (data.valid_frac=0, no data.valid); "
                            "score the test split, or train with data.valid_frac > 0 or data.valid")
        sources = None if self.sources is None else dataclasses.replace(self.sources, test=self.sources.valid)
        return dataclasses.replace(self, test=self.valid, test_sentences=self.valid_sentences, sources=sources)


def _resolve(root: str, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else Path(root) / path


def _read(cfg: DataConfig, name: str) -> list[list[str]]:
    """The file `name` (relative to data.root) as token lists, tokenized as the config says."""
    return read_sentences(_resolve(cfg.root, name), cfg.tokenizer, cfg.lowercase)


def _oracle_sentences(cfg: DataConfig, seed: int):
    from textgan.oracle import OracleLSTM

    if cfg.oracle_params:
        oracle = OracleLSTM.from_npz(_resolve(cfg.root, cfg.oracle_params), seq_len=cfg.oracle_seq_len)
    else:
        oracle = OracleLSTM.random(seq_len=cfg.oracle_seq_len, seed=seed)
    train = oracle.sample(cfg.num_train, generator=torch.Generator().manual_seed(seed + 1))
    test = oracle.sample(cfg.num_test, generator=torch.Generator().manual_seed(seed + 2))
    as_words = lambda ids: [[str(i) for i in row] for row in ids.tolist()]  # noqa: E731
    vocab = Vocab(list(SPECIALS) + [str(i) for i in range(oracle.vocab_size)])
    return oracle, as_words(train), as_words(test), vocab


@dataclass
class Labels:
    """Each split's class names (or a paired corpus's source sentences, as tokens) as read (None:
    unlabelled), before they become ids."""
    train: list | None = None
    test: list | None = None
    valid: list | None = None


@dataclass
class Sources:
    """A paired corpus's source sentences, each split encoded as its targets are."""
    train: Encoded
    test: Encoded
    valid: Encoded | None = None


def _read_sources(cfg: DataConfig, train: list, test: list, valid: list | None) -> Labels:
    """data.train_sources / test_sources / valid_sources as token lists, each as long as its sentence file."""
    def read(sources: str, sentences: list, name: str) -> list[list[str]]:
        lines = _read(cfg, sources)
        if len(lines) != len(sentences):
            raise DataError(f"source file {_resolve(cfg.root, sources)} has {len(lines)} sentences but "
                            f"{_resolve(cfg.root, name)} has {len(sentences)}; give one source per non-empty line, "
                            "line i the source of sentence i")
        return lines
    return Labels(train=read(cfg.train_sources, train, cfg.train), test=read(cfg.test_sources, test, cfg.test),
                  valid=read(cfg.valid_sources, valid, cfg.valid) if valid is not None and cfg.valid_sources else None)


def _read_labels(cfg: DataConfig, train: list, test: list, valid: list | None) -> Labels:
    """data.train_labels / test_labels / valid_labels, each checked against its sentence file."""
    if not cfg.train_labels:
        return Labels()
    read = lambda labels, sentences, name: read_labels(  # noqa: E731
        _resolve(cfg.root, labels), len(sentences), _resolve(cfg.root, name))
    return Labels(train=read(cfg.train_labels, train, cfg.train), test=read(cfg.test_labels, test, cfg.test),
                  valid=read(cfg.valid_labels, valid, cfg.valid) if valid is not None and cfg.valid_labels else None)


def label_ids(labels: list[str] | None, names: list[str], split: str) -> list[int] | None:
    """Class names as ids in `names` (the training set's classes); a name outside them is an error."""
    if labels is None:
        return None
    index = {name: i for i, name in enumerate(names)}
    unknown = next((label for label in labels if label not in index), None)
    if unknown is not None:
        raise DataError(f"{split} label {unknown!r} is not a class of the training labels ({', '.join(names)}); "
                        "every held-out label must occur in the training labels")
    return [index[label] for label in labels]


def split_off(sentences: list, frac: float, seed: int) -> tuple[list, list]:
    """(kept, held out): round(frac * N) sentences chosen by a permutation seeded by `seed`, both
    parts in their original order. The same sentences, frac and seed always give the same split."""
    n = len(sentences)
    k = round(frac * n)
    if not 1 <= k < n:
        raise DataError(f"data.valid_frac={frac} holds out {k} of {n} training sentences; choose a "
                        "fraction that leaves at least one sentence on each side, or 0 for no split")
    held = set(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].tolist())
    return ([s for i, s in enumerate(sentences) if i not in held],
            [s for i, s in enumerate(sentences) if i in held])


SPLITS = ("train", "test", "valid")


def _conditions(sources: Labels, vocab: Vocab, max_len: int, add_eos: bool) -> tuple[dict, Sources]:
    """A paired corpus's labels (each sentence's source row: its own index) and encoded sources;
    a source past max_len is cut, never dropped."""
    lists = [getattr(sources, split) for split in SPLITS]
    return ({split: None if rows is None else list(range(len(rows))) for split, rows in zip(SPLITS, lists)},
            Sources(*(None if rows is None else encode(rows, vocab, max_len, "truncate", add_eos) for rows in lists)))


def prepare(cfg: DataConfig, seed: int, vocab: Vocab | None = None, paired: bool = False) -> Corpus:
    """Read or generate the corpus; `vocab` (from a run folder) overrides building one. `seed`
    (run.seed) generates a built-in corpus unless data.seed names its own. `paired`
    (generator.condition=sentence): each sentence with its source sentence (data.*_sources, or the
    grammar's pairs), instead of a class."""
    seed = seed if cfg.seed < 0 else cfg.seed
    oracle, valid, labels, names = None, None, Labels(), None
    if cfg.source == "files":
        train, test = _read(cfg, cfg.train), _read(cfg, cfg.test)
        valid = _read(cfg, cfg.valid) if cfg.valid else None
        labels = _read_sources(cfg, train, test, valid) if paired else _read_labels(cfg, train, test, valid)
        names = sorted(set(labels.train)) if labels.train is not None and not paired else None
        built = None
    elif cfg.source == "oracle":
        oracle, train, test, built = _oracle_sentences(cfg, seed)
    elif paired:  # the grammar's sentences, each with a source sentence about the same subject
        from textgan.grammar import sample_grammar_pairs

        train, labels.train = sample_grammar_pairs(cfg.num_train, seed=seed + 1)
        test, labels.test = sample_grammar_pairs(cfg.num_test, seed=seed + 2)
        built = None
    else:  # the grammar's sentences, labelled by what their main verb takes
        from textgan.grammar import LABELS, sample_grammar_labelled

        train, labels.train = sample_grammar_labelled(cfg.num_train, seed=seed + 1)
        test, labels.test = sample_grammar_labelled(cfg.num_test, seed=seed + 2)
        built, names = None, list(LABELS)
    if cfg.valid_frac > 0:  # before the vocabulary: a validation sentence's words are as unseen as a test one's
        if labels.train is None:
            train, valid = split_off(train, cfg.valid_frac, cfg.valid_seed)
        else:  # each label goes with its sentence
            kept, held = split_off(list(zip(train, labels.train)), cfg.valid_frac, cfg.valid_seed)
            (train, labels.train), (valid, labels.valid) = (map(list, zip(*part)) for part in (kept, held))
    train_oov = 0.0 if vocab is None else oov_share(train, vocab)
    if vocab is None:
        vocab = built or Vocab.build(train + (labels.train if paired else []), min_freq=cfg.min_freq,
                                     max_size=cfg.max_size)
    elif built is not None and vocab.itos != built.itos:
        raise DataError("the run's vocabulary does not match the oracle corpus; use the same data config")
    add_eos = cfg.source != "oracle"
    if not cfg.max_len and cfg.source == "files":  # an automatic max_len follows the longest sentence
        check_lengths(train, cfg.max_len_ceiling, _resolve(cfg.root, cfg.train))
    max_len = cfg.max_len or max(len(s) for s in train) + int(add_eos)
    ids, sources = _conditions(labels, vocab, max_len, add_eos) if paired else (
        {split: label_ids(getattr(labels, split), names, split) for split in SPLITS}, None)
    enc_train = encode(train, vocab, max_len, cfg.long_policy, add_eos, labels=ids["train"])
    enc_test = encode(test, vocab, max_len, cfg.long_policy, add_eos, labels=ids["test"])
    enc_valid = (encode(valid, vocab, max_len, cfg.long_policy, add_eos, labels=ids["valid"])
                 if valid is not None else None)
    banned = banned_ids(vocab, add_eos)
    return Corpus(vocab=vocab, train=enc_train, test=enc_test, test_sentences=test, max_len=max_len,
                  add_eos=add_eos, banned=banned, oracle=oracle, source=cfg.source,
                  valid=enc_valid, valid_sentences=valid, train_oov=train_oov, label_names=names,
                  sources=sources)
