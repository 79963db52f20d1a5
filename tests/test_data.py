"""Reading, tokenizing, vocabulary and encoding, with the real corpora and bad files."""
from __future__ import annotations

import pytest
import torch

from textgan.config import DataConfig
from textgan.corpus import prepare
from textgan.data import SPECIALS, DataError, Vocab, encode, read_lines, tokenize


def test_coco_has_no_trailing_newline_and_all_lines_read(data_root):
    lines = read_lines(data_root / "coco" / "train.txt")
    assert len(lines) == 10000
    assert all(line == line.strip() and line for line in lines)


def test_emnlp_trailing_spaces_stripped(data_root):
    lines = read_lines(data_root / "emnlp_news" / "test.txt")
    assert len(lines) == 10000 and not any(line.endswith(" ") for line in lines)


def test_nltk_tokenizer_matches_published_max_len(data_root):
    sents = [tokenize(s, "nltk") for s in read_lines(data_root / "coco" / "train.txt")]
    assert max(len(s) for s in sents) == 37  # the benchmark's max_seq_len
    assert len({t for s in sents for t in s}) == 4659  # NLTK 3.10 types, see shared/data/README.md


def test_vocab_specials_min_freq_max_size_roundtrip(tmp_path):
    sents = [["a", "b", "a"], ["c", "a", "b"]]
    vocab = Vocab.build(sents, min_freq=2)
    assert vocab.itos == list(SPECIALS) + ["a", "b"]
    assert Vocab.build(sents, max_size=1).itos == list(SPECIALS) + ["a"]
    assert vocab.encode(["c"]) == [vocab.unk_id]
    vocab.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").itos == vocab.itos
    assert vocab.decode([4, 5, vocab.eos_id, 4]) == ["a", "b"]


@pytest.mark.parametrize("policy", ["truncate", "drop"])
def test_max_len_policy_is_counted(policy):
    vocab = Vocab.build([["a", "b", "c", "d"]])
    enc = encode([["a"], ["a", "b", "c", "d"]], vocab, max_len=3, policy=policy)
    if policy == "truncate":
        assert (enc.truncated, enc.dropped) == (1, 0) and enc.tokens.shape == (2, 3)
        assert enc.tokens[1].tolist() == vocab.encode(["a", "b", "c"])  # no room for EOS
    else:
        assert (enc.truncated, enc.dropped) == (0, 1) and enc.tokens.shape == (1, 3)
    assert enc.tokens[0].tolist() == [vocab.stoi["a"], vocab.eos_id, vocab.pad_id]
    assert enc.lengths[0] == 2


def test_all_dropped_is_an_error():
    vocab = Vocab.build([["a", "b"]])
    with pytest.raises(DataError, match="max_len"):
        encode([["a", "b"]], vocab, max_len=2, policy="drop")


@pytest.mark.parametrize("content, needle", [
    (None, "not found"),
    (b"", "no sentences"),
    (b"\n \n\t\n", "no sentences"),
    (b"\x00\x01\x02binary", "binary"),
    (b"caf\xe9 au lait\n", "not UTF-8"),
])
def test_bad_data_files(tmp_path, content, needle):
    path = tmp_path / "train.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=needle) as info:
        read_lines(path)
    assert "\n" not in str(info.value)


def test_prepare_files_auto_max_len(data_root):
    corpus = prepare(DataConfig(root=str(data_root), train="tiny/train.txt", test="tiny/test.txt"), seed=0)
    longest = max(int(n) for n in corpus.train.lengths)
    assert corpus.max_len == longest  # longest sentence + its EOS
    assert corpus.train.truncated == 0 and corpus.add_eos
    assert torch.all(corpus.train.tokens[:, 0] != corpus.vocab.pad_id)


def test_the_token_cache_names_nltk_s_version_without_importing_nltk():
    """The cache key reads nltk's version from its package metadata (importing nltk costs 1-2 s a
    `textgan eval`): the same string nltk reports, so caches written before still match."""
    import nltk

    from textgan.data import nltk_version

    assert nltk_version() == nltk.__version__


def test_nltk_tokens_come_back_from_the_cache_as_computed(tmp_path, monkeypatch, data_root):
    from textgan.data import read_sentences

    monkeypatch.setenv("TEXTGAN_CACHE_DIR", str(tmp_path / "cache"))
    lines = read_lines(data_root / "coco" / "test.txt")[:300] + ["Don't stop: it's 5.5$ (really)!"]
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    direct = [tokenize(line, "nltk", True) for line in lines]
    assert read_sentences(corpus, "nltk", True) == direct  # computed, then kept
    kept = list((tmp_path / "cache" / "tokens").glob("*.json"))
    assert len(kept) == 1
    kept[0].write_text('[["a", "forged", "cache"]]' + "\n")  # wrong length: not believed
    assert read_sentences(corpus, "nltk", True) == direct
    assert read_sentences(corpus, "nltk", True) == direct  # rewritten, read back
    assert read_sentences(corpus, "nltk", False) == [tokenize(line, "nltk", False) for line in lines]
    assert len(list((tmp_path / "cache" / "tokens").glob("*.json"))) == 2  # case kept apart
    corpus.write_text("\n".join(lines[:10]) + "\n", encoding="utf-8")  # a changed file: new tokens
    assert read_sentences(corpus, "nltk", True) == direct[:10]
    assert read_sentences(corpus, "whitespace", True) == [line.lower().split() for line in lines[:10]]
    assert len(list((tmp_path / "cache" / "tokens").glob("*.json"))) == 3  # whitespace is never cached


def test_an_unwritable_cache_still_tokenizes(tmp_path, monkeypatch):
    from textgan.data import read_sentences

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("TEXTGAN_CACHE_DIR", str(blocker / "cache"))  # under a file: cannot be made
    corpus = tmp_path / "c.txt"
    corpus.write_text("A dog, running.\nTwo cats\n", encoding="utf-8")
    assert read_sentences(corpus, "nltk", True) == [["a", "dog", ",", "running", "."], ["two", "cats"]]
