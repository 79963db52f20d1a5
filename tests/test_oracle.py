"""The oracle LSTM against a numpy re-implementation of SeqGAN's equations, bad parameter files,
and the grammar corpus (every sample parses, scrambled text does not)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from textgan.config import DataConfig
from textgan.corpus import prepare
from textgan.data import SPECIALS, DataError
from textgan.oracle import OracleLSTM, _expected_shapes, grammaticality, sample_grammar

NPZ = "oracle/seqgan_target_params.npz"


@pytest.fixture(scope="module")
def params(data_root) -> dict[str, np.ndarray]:
    with np.load(data_root / NPZ, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def oracle(data_root) -> OracleLSTM:
    return OracleLSTM.from_npz(data_root / NPZ)


def reference_log_probs(p: dict[str, np.ndarray], ids: np.ndarray) -> np.ndarray:
    """(B, T, V) float64 next-token log-probs, straight from the README's equations."""
    p = {k: v.astype(np.float64) for k, v in p.items()}
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    b, t_len = ids.shape
    h = np.zeros((b, p["bi"].shape[0]))
    c = np.zeros_like(h)
    prev = np.zeros(b, dtype=np.int64)  # START_TOKEN = 0
    out = []
    for t in range(t_len):
        x = p["g_embeddings"][prev]
        i = sig(x @ p["Wi"] + h @ p["Ui"] + p["bi"])
        f = sig(x @ p["Wf"] + h @ p["Uf"] + p["bf"])
        o = sig(x @ p["Wog"] + h @ p["Uog"] + p["bog"])
        c_new = np.tanh(x @ p["Wc"] + h @ p["Uc"] + p["bc"])
        c = f * c + i * c_new
        h = o * np.tanh(c)
        logits = h @ p["Wo"] + p["bo"]
        m = logits.max(axis=1, keepdims=True)
        out.append(logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))
        prev = ids[:, t]
    return np.stack(out, axis=1)


def test_from_npz_shapes(oracle):
    assert (oracle.vocab_size, oracle.seq_len, oracle.emb_dim, oracle.hidden_dim) == (5000, 20, 32, 32)
    assert oracle.w_x.shape == (32, 128) and oracle.w_h.shape == (32, 128)  # fused gates
    assert all(buf.dtype == torch.float32 and not buf.requires_grad for buf in oracle.buffers())
    assert not list(oracle.parameters())


@pytest.mark.parametrize("t_len", [20, 7, 31])
def test_nll_matches_numpy_reference(oracle, params, t_len):
    own = oracle.sample(3, torch.Generator().manual_seed(5))
    ids = torch.cat([own.repeat(1, 2)[:, :t_len], torch.randint(0, 5000, (3, t_len))])  # T != seq_len works too
    logp = reference_log_probs(params, ids.numpy())
    gold = -np.take_along_axis(logp, ids.numpy()[:, :, None], axis=2).squeeze(2)  # (B, T)
    assert oracle.nll(ids) == pytest.approx(gold.mean(), rel=1e-4)
    assert oracle.nll(ids, batch_size=2) == pytest.approx(gold.mean(), rel=1e-4)
    assert oracle.log_prob(ids).numpy() == pytest.approx(-gold.sum(axis=1), rel=1e-4)


@pytest.mark.slow
def test_sampling_reproducible_and_in_range(oracle):
    a = oracle.sample(300, generator=torch.Generator().manual_seed(1))
    assert a.shape == (300, 20) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) < 5000
    assert torch.equal(a, oracle.sample(300, generator=torch.Generator().manual_seed(1), batch_size=64))
    assert not torch.equal(a, oracle.sample(300, generator=torch.Generator().manual_seed(2)))
    assert (a[:, 0] == a[0, 0]).float().mean() < 0.5  # really sampled, not argmax
    assert oracle.sample(0).shape == (0, 20)


@pytest.mark.slow
def test_own_samples_score_like_the_entropy_and_far_below_uniform(oracle, params):
    """-log p of own samples and the mean next-token entropy along them both estimate the entropy rate."""
    ids = oracle.sample(400, generator=torch.Generator().manual_seed(0))
    own = oracle.nll(ids)
    logp = reference_log_probs(params, ids.numpy())
    entropy = float(-(np.exp(logp) * logp).sum(axis=2).mean())
    assert own == pytest.approx(entropy, abs=0.1)
    assert 5.5 < own < 6.0  # SeqGAN's oracle data scores 5.75 (RelGAN, Table 1)
    uniform = oracle.nll(torch.randint(0, 5000, (400, 20), generator=torch.Generator().manual_seed(0)))
    assert uniform > math.log(5000) + 1 and own < uniform - 3


def test_random_oracle_is_seeded_and_device_and_dtype_moves_keep_it(oracle):
    a, b = OracleLSTM.random(seq_len=5, seed=3, vocab_size=50), OracleLSTM.random(seq_len=5, seed=3, vocab_size=50)
    assert torch.equal(a.emb, b.emb) and not torch.equal(a.emb, OracleLSTM.random(seed=4, vocab_size=50).emb)
    ids = a.sample(64, torch.Generator().manual_seed(0))
    assert ids.shape == (64, 5) and a.nll(ids) < a.nll(torch.randint(0, 50, (64, 5)))
    assert a.to(torch.float64).nll(ids) == pytest.approx(b.nll(ids), rel=1e-5)
    assert a.to("cpu") is a
    with pytest.raises(ValueError, match="0..49"):
        b.nll(ids - 1)


def _tiny_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal(shape).astype(np.float32) for k, shape in _expected_shapes(11, 3, 2).items()}


def _bad_files(tmp_path):
    good = _tiny_params()
    missing = {k: v for k, v in good.items() if k != "Wo"}
    np.savez(tmp_path / "missing.npz", **missing)
    np.savez(tmp_path / "shape.npz", **{**good, "Uf": np.zeros((2, 3), np.float32)})
    np.savez(tmp_path / "nan.npz", **{**good, "bo": np.full(11, np.nan, np.float32)})
    np.savez(tmp_path / "pickled.npz", **{**good, "bi": np.array([None, {}], dtype=object)})
    np.save(tmp_path / "single.npy", good["Wo"])
    (tmp_path / "text.npz").write_text("not an archive\n")
    return {"missing.npz": "Wo", "shape.npz": "Uf", "nan.npz": "bo", "pickled.npz": "readable",
            "single.npy": "readable", "text.npz": "readable", "absent.npz": "not found"}


def test_from_npz_loads_a_valid_small_file(tmp_path):
    np.savez(tmp_path / "ok.npz", **_tiny_params())
    oracle = OracleLSTM.from_npz(tmp_path / "ok.npz", seq_len=6)
    assert oracle.vocab_size == 11 and oracle.sample(3).shape == (3, 6)


def test_bad_parameter_files_are_one_line_data_errors(tmp_path):
    for name, says in _bad_files(tmp_path).items():
        with pytest.raises(DataError) as err:
            OracleLSTM.from_npz(tmp_path / name)
        message = str(err.value)
        assert "\n" not in message and says in message and "data.oracle_params=" in message, message


def test_grammar_samples_reproducible_and_sane():
    a = sample_grammar(300, seed=7)
    assert a == sample_grammar(300, seed=7) and a != sample_grammar(300, seed=8)
    lengths = [len(s) for s in a]
    assert 3 <= min(lengths) and max(lengths) <= 40 and 6 < sum(lengths) / len(lengths) < 13
    assert all(s[-1] == "." and all(t == t.lower() and t for t in s) for s in a)
    assert len({tuple(s) for s in a}) > 250  # varied, not a handful of sentences


def test_grammaticality_separates_grammar_from_scrambled_text():
    sents = sample_grammar(200, seed=0)
    assert grammaticality(sents) == 1.0
    assert grammaticality([s[::-1] for s in sents]) < 0.2
    assert grammaticality([s[:-1] for s in sents]) == 0.0  # the final "." is part of a sentence
    assert grammaticality([["the", "zebra", "slept", "."]]) == 0.0  # out-of-grammar word
    assert grammaticality([["the", "small", "dog", "saw", "a", "red", "ball", "in", "the", "park", "."]]) == 1.0
    assert grammaticality([sents[0], [], ["dog", "the"], sents[1]]) == 0.5
    assert grammaticality([]) == 0.0


def test_prepare_oracle_corpus(data_root):
    cfg = DataConfig(source="oracle", root=str(data_root), oracle_params=NPZ, num_train=200, num_test=50)
    corpus = prepare(cfg, seed=0)
    assert isinstance(corpus.oracle, OracleLSTM) and corpus.max_len == 20 and not corpus.add_eos
    assert corpus.train.tokens.shape == (200, 20) and corpus.test.tokens.shape == (50, 20)
    assert len(corpus.vocab) == 5000 + len(SPECIALS) and int(corpus.train.tokens.min()) >= len(SPECIALS)
    assert 5.0 < corpus.oracle.nll(corpus.test.tokens - len(SPECIALS)) < 6.5
    again = prepare(cfg, seed=0)
    assert torch.equal(again.train.tokens, corpus.train.tokens)


def test_prepare_grammar_corpus():
    corpus = prepare(DataConfig(source="grammar", num_train=200, num_test=50), seed=0)
    assert corpus.oracle is None and corpus.add_eos and corpus.train.tokens.shape[0] == 200
    assert grammaticality(corpus.test_sentences) == 1.0
    decoded = [corpus.vocab.decode(row) for row in corpus.train.tokens.tolist()]
    assert decoded == sample_grammar(200, seed=1)


@pytest.mark.slow
def test_data_seed_fixes_a_built_in_corpus_whatever_the_run_seed(data_root):
    oracle_cfg = DataConfig(source="oracle", root=str(data_root), oracle_params=NPZ, num_train=100, num_test=30)
    follows = [prepare(oracle_cfg, seed=s) for s in (0, 1)]
    assert not torch.equal(follows[0].train.tokens, follows[1].train.tokens)  # -1: run.seed decides
    fixed = DataConfig(source="oracle", root=str(data_root), oracle_params=NPZ, num_train=100, num_test=30, seed=0)
    for run_seed in (1, 7):
        corpus = prepare(fixed, seed=run_seed)
        assert torch.equal(corpus.train.tokens, follows[0].train.tokens)
        assert torch.equal(corpus.test.tokens, follows[0].test.tokens)
    grammar = [prepare(DataConfig(source="grammar", num_train=50, num_test=10, seed=3), seed=s) for s in (0, 5)]
    assert grammar[0].test_sentences == grammar[1].test_sentences == sample_grammar(10, seed=5)


def test_data_seed_below_minus_one_is_rejected():
    from textgan.config import ConfigError

    with pytest.raises(ConfigError, match=r"seed: must be >= 0, or -1 to use run.seed"):
        DataConfig(seed=-2)
