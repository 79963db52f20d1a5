"""Conditional generation from a source sentence read by an encoder (issue 48, item 6): the grammar's
sentence pairs, paired files, the source reader setting the initial state with z, the projection
discriminator of its reading, the source metrics, and the CLI and API end to end, with their
one-line errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import REPO, assert_samples_are_prefixes, run_cli, trained_run
from textgan import checkpoint, config
from textgan.config import ConfigError
from textgan.corpus import prepare
from textgan.data import DataError
from textgan.grammar import SUBJECTS, sample_grammar, sample_grammar_pairs, subject_of
from textgan.metrics.source_match import source_metrics, subject_agreement
from textgan.models import build_discriminator, build_generator

CONFIG = str(REPO / "configs" / "quickstart_source.yaml")
TINY = ["data.num_train=300", "data.num_test=60", "generator.emb_dim=16", "generator.hidden_dim=24",
        "generator.latent_dim=8", "discriminator.emb_dim=16", "discriminator.num_rep=16",
        "discriminator.num_filters=[8, 8, 8, 8]", "mle.epochs=1", "adversarial.steps=3",
        "adversarial.d_steps=1", "adversarial.batch_size=16", "mle.batch_size=32", "eval.num_samples=30",
        "log.progress=false"]


# ------------------------------------------------------------------------------------ data

def test_grammar_pairs_share_their_subject_and_keep_the_plain_sentences():
    targets, sources = sample_grammar_pairs(400, seed=3)
    assert targets == sample_grammar(400, seed=3)
    assert all(subject_of(t) == subject_of(s) and subject_of(t) in SUBJECTS for t, s in zip(targets, sources))
    assert sum(t == s for t, s in zip(targets, sources)) < 40  # mostly another sentence
    assert len({subject_of(t) for t in targets}) > 30  # most of the 48 subjects occur
    assert sample_grammar_pairs(400, seed=3) == (targets, sources)  # reproducible


def _paired(**extra) -> config.Config:
    return config.load(CONFIG, [*TINY, *[f"{k}={v}" for k, v in extra.items()]])


def test_paired_grammar_corpus_points_each_sentence_at_its_source():
    cfg = _paired(**{"data.valid_frac": 0.2, "data.num_train": 2000})  # every subject in the vocabulary
    corpus = prepare(cfg.data, cfg.run.seed, paired=True)
    assert corpus.label_names is None and corpus.sources is not None
    for split in ("train", "test", "valid"):
        enc, src = getattr(corpus, split), getattr(corpus.sources, split)
        assert torch.equal(enc.labels, torch.arange(enc.tokens.shape[0]))
        for row in range(0, enc.tokens.shape[0], 7):  # a validation sentence keeps its own source
            target = corpus.vocab.decode(enc.tokens[row].tolist())
            source = corpus.vocab.decode(src.tokens[enc.labels[row]].tolist())
            assert subject_of(target) == subject_of(source), (split, target, source)
    plain = prepare(cfg.data, cfg.run.seed)  # unpaired: the same sentences, with classes
    assert plain.sources is None and plain.test_sentences == corpus.test_sentences


def _files(tmp_path: Path, train_src: str, test_src: str) -> config.Config:
    (tmp_path / "train.txt").write_text("a cat sat\nthe dog ran\na man ate bread\nthe cat slept\n")
    (tmp_path / "test.txt").write_text("a dog sat\nthe man ran\n")
    (tmp_path / "train.src").write_text(train_src)
    (tmp_path / "test.src").write_text(test_src)
    return config.load(CONFIG, [*TINY, "data.source=files", f"data.root={tmp_path}", "data.train=train.txt",
                                "data.test=test.txt", "data.train_sources=train.src", "data.test_sources=test.src"])


def test_source_files_pair_line_by_line_and_share_the_vocabulary(tmp_path):
    cfg = _files(tmp_path, "one cat\ntwo dogs\nthree men\nfour cats\n", "a dog\nmen\n")
    corpus = prepare(cfg.data, cfg.run.seed, paired=True)
    assert corpus.vocab.decode(corpus.sources.train.tokens[2].tolist()) == ["three", "men"]
    assert corpus.vocab.decode(corpus.sources.test.tokens[1].tolist()) == ["men"]
    assert "four" in corpus.vocab.stoi  # the sources' words are in the vocabulary too


def test_a_source_file_of_the_wrong_length_is_a_one_line_error(tmp_path):
    cfg = _files(tmp_path, "one cat\ntwo dogs\n", "a dog\nmen\n")
    with pytest.raises(DataError, match="has 2 sentences but .* has 4") as err:
        prepare(cfg.data, cfg.run.seed, paired=True)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("overrides, key", [
    (["generator.conditional=false"], "generator.condition"),
    (["discriminator.conditioning=auxiliary"], "discriminator.conditioning"),
    (["generator.init_from=runs/x"], "generator.init_from"),
    (["data.source=oracle"], "generator.conditional"),
    (["data.source=files", "data.train=a.txt", "data.test=b.txt"], "generator.conditional"),
    (["data.source=files", "data.train=a.txt", "data.test=b.txt", "data.train_sources=a.src",
      "data.test_sources=b.src", "data.valid=c.txt"], "data.valid_sources"),
    (["data.train_sources=a.src"], "data.train_sources"),  # the grammar pairs its own
    (["generator.condition=class", "data.source=files", "data.train=a.txt", "data.test=b.txt",
      "data.train_labels=a.lab", "data.test_labels=b.lab", "data.train_sources=a.src"], "data.train_sources"),
])
def test_sentence_condition_config_mistakes_are_one_line_errors(overrides, key):
    with pytest.raises(ConfigError) as err:
        config.load(CONFIG, [*TINY, *overrides])
    assert str(err.value).startswith(key + ":") and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------ models

def _generator(core: str = "lstm", prior: str = "normal", pool: int = 5):
    cfg = config.load(CONFIG, [*TINY, f"generator.core={core}", f"generator.prior={prior}",
                               "generator.head_size=8", "generator.num_heads=2"]).generator
    g = build_generator(cfg, vocab_size=20, banned=[0, 1], num_classes=pool, source_len=6)
    torch.manual_seed(0)
    g.set_sources(torch.randint(3, 20, (pool, 6)), torch.tensor([6, 3, 4, 2, 5][:pool]))
    return g


@pytest.mark.parametrize("core", ["lstm", "relational_memory"])
@pytest.mark.parametrize("prior", ["normal", "none"])
def test_initial_state_is_z_projected_plus_the_sources_reading(core, prior):
    g = _generator(core, prior)
    z = g.sample_latent(2, torch.Generator().manual_seed(1))[:, :g.latent_dim]
    a, b = g.with_class(z, torch.tensor([0, 0])), g.with_class(z, torch.tensor([1, 1]))
    reading = g.source_reader(g.source_pool[:2], g.source_lengths[:2])
    assert torch.allclose(a[:, g.latent_dim:], reading[0].expand(2, -1), atol=1e-6)  # batch mates may round apart
    base = g.latent_proj(z) if g.latent_proj is not None else 0.0
    assert torch.allclose(g.state_vector(a), base + reading[0], atol=1e-6)
    sa, sb = g.init_state(a), g.init_state(b)
    first = sa[0] if isinstance(sa, tuple) else sa
    assert not torch.allclose(first, sb[0] if isinstance(sb, tuple) else sb)  # another source, another state


def test_prior_draws_read_pool_sources_and_the_reading_depends_on_word_order():
    g = _generator()
    code = g.sample_latent(64, torch.Generator().manual_seed(2))
    readings = g.source_reader(g.source_pool, g.source_lengths)  # (5, F)
    hits = (code[:, None, g.latent_dim:] - readings[None]).abs().amax(-1) < 1e-5  # (64, 5)
    assert (hits.sum(1) == 1).all() and hits.any(0).all()  # every draw is one pool source; all drawn
    tokens = torch.tensor([[5, 6, 7, 2]])
    flipped = torch.tensor([[7, 6, 5, 2]])
    lengths = torch.tensor([4])
    assert not torch.allclose(g.source_reader(tokens, lengths), g.source_reader(flipped, lengths))


def test_mle_gradient_reaches_the_reader_and_d_sees_the_reading_detached():
    g = _generator()
    z = g.with_class(torch.zeros(3, g.latent_dim), torch.tensor([0, 1, 2]))
    loss = g.mle_loss(torch.randint(3, 20, (3, 5)), z, pad_id=0)
    loss.backward()
    assert g.source_reader.lstm.weight_ih_l0.grad.abs().sum() > 0
    assert not g.conditions_of(z).requires_grad and g.conditions_of(z).shape == (3, g.state_vector_size)
    reals = g.conditions_of_classes(torch.tensor([0, 1, 2]))
    assert torch.allclose(reals, z[:, g.latent_dim:].detach(), atol=1e-6)


def test_a_sentence_condition_opens_the_forget_gates_and_nothing_else_changes():
    cfg = config.load(CONFIG, [*TINY, "generator.num_layers=2"]).generator
    torch.manual_seed(0)
    g = build_generator(cfg, vocab_size=20, banned=[0, 1], num_classes=4, source_len=6)
    h = g.lstm.hidden_size
    for layer in range(2):
        forget = getattr(g.lstm, f"bias_ih_l{layer}")[h:2 * h] + getattr(g.lstm, f"bias_hh_l{layer}")[h:2 * h]
        assert torch.allclose(forget, torch.ones(h))  # Jozefowicz et al. 2015: c0 survives the first steps
    for conditional, condition in ((False, "class"), (True, "class")):
        plain = config.load(CONFIG, [*TINY, "generator.num_layers=2", f"generator.conditional={conditional}",
                                     f"generator.condition={condition}", "data.train_sources=", "data.test_sources="])
        torch.manual_seed(0)
        other = build_generator(plain.generator, vocab_size=20, banned=[0, 1], num_classes=4 if conditional else 0)
        assert other.lstm.bias_ih_l0[h:2 * h].abs().max() < 0.5  # torch's U(+-1/sqrt(H)), untouched


@pytest.mark.parametrize("kind", ["relgan_cnn", "lstm"])
def test_projection_discriminator_of_a_reading_adds_its_linear_maps_inner_product(kind):
    cfg = config.load(CONFIG, [*TINY, f"discriminator.kind={kind}", "discriminator.hidden_dim=16"]).discriminator
    torch.manual_seed(0)
    d = build_discriminator(cfg, 20, condition_dim=12).eval()
    torch.manual_seed(0)
    plain = build_discriminator(cfg, 20).eval()
    plain.load_state_dict({k: v for k, v in d.state_dict().items() if not k.startswith("projection.")})
    dists = torch.softmax(torch.randn(3, 7, 20), -1)
    c = torch.randn(3, 12)
    gap = d(dists, labels=c) - plain(dists)  # (B, R): <W c, phi> for each representation
    assert gap.abs().max() > 1e-4
    assert torch.allclose(d(dists, labels=2 * c) - plain(dists), 2 * gap, atol=1e-5)  # linear in c


# ------------------------------------------------------------------------------------ metric

def test_subject_agreement_reads_subjects_exactly_and_shuffled_is_the_chance_baseline():
    targets, sources = sample_grammar_pairs(200, seed=4)
    assert subject_agreement(sources, sources)[0] == 1.0  # a copy of its source
    same, shuffled = subject_agreement(targets, sources)
    assert same == 1.0 and shuffled < 0.3
    assert subject_agreement([["sat", "."]] + targets[1:], sources)[0] == 199 / 200  # no subject: no match


def test_source_metrics_of_a_generator_and_the_nll_gap_its_sources_make():
    cfg = _paired(**{"data.num_train": 600, "generator.hidden_dim": 64})
    corpus = prepare(cfg.data, cfg.run.seed, paired=True)
    torch.manual_seed(0)
    g = build_generator(cfg.generator, len(corpus.vocab), corpus.banned, num_classes=600, source_len=corpus.max_len)
    g.set_sources(corpus.sources.train.tokens, corpus.sources.train.lengths)
    before = source_metrics(g, corpus, num=60, seed=1)
    assert set(before) == {"pair_bleu", "pair_bleu_shuffled", "pair_nll_tok", "pair_nll_tok_shuffled",
                           "src_subject", "src_subject_shuffled"}
    assert abs(before["pair_nll_tok"] - before["pair_nll_tok_shuffled"]) < 0.05  # untrained: the source tells nothing
    opt = torch.optim.Adam(g.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):  # MLE on each sentence given its own source
        idx = torch.randint(600, (64,), generator=gen)
        z = g.with_class(g.sample_latent(64, gen), corpus.train.labels[idx])
        loss = g.mle_loss(corpus.train.tokens[idx], z, pad_id=corpus.vocab.pad_id)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = source_metrics(g, corpus, num=60, seed=1)
    assert after["pair_nll_tok"] < after["pair_nll_tok_shuffled"] - 0.02  # its own source explains its sentence


# ------------------------------------------------------------------------------------ CLI and API

@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory.mktemp("source"), CONFIG, *TINY, "run.seed=3")


@pytest.mark.slow  # trains a run in a subprocess (the module fixture)
def test_sentence_conditioned_run_end_to_end(source_run):
    state = checkpoint.load(checkpoint.newest(source_run / "checkpoints"))
    assert state["generator"]["source_pool"].shape == (300, state["max_len"])
    assert "source_reader.lstm.weight_ih_l0" in state["generator"]
    assert "projection.embed.weight" in state["discriminator"]
    flat = checkpoint.read_metrics(state)
    for name in ("pair_bleu", "pair_bleu_shuffled", "src_subject", "src_subject_shuffled"):
        assert 0.0 <= flat[name] <= 1.0, name
    assert_samples_are_prefixes(source_run, "--source", "the clever girl sang .")
    drawn = run_cli("sample", str(source_run), "--num", "3")  # sources drawn from the training pool
    assert drawn.returncode == 0 and len(drawn.stdout.splitlines()) == 3, drawn.stderr
    res = run_cli("eval", str(source_run), "--num", "30")
    assert res.returncode == 0, res.stderr
    assert "src_subject" in res.stdout and "pair_bleu_shuffled" in res.stdout


@pytest.mark.slow  # trains a run in a subprocess (the module fixture)
def test_api_samples_from_a_source_as_the_cli_does(source_run):
    import textgan.api as tg
    from textgan.errors import UserError

    model = tg.load(source_run)
    lines = model.sample(3, seed=2, source="the clever girl sang .")
    cli = run_cli("sample", str(source_run), "--source", "the clever girl sang .", "--num", "3", "--seed", "2")
    assert lines == cli.stdout.splitlines()
    with pytest.raises(UserError, match="not classes"):
        model.sample(2, cls="no_object")
    with pytest.raises(UserError, match="no word of the run's vocabulary"):
        model.sample(2, source="zyx qwv")


@pytest.mark.slow  # trains a run in a subprocess (the module fixture)
@pytest.mark.parametrize("args, message", [
    (["--class", "no_object"], "not classes; give a source sentence (--source TEXT)"),
    (["--source", ""], "is empty"),
    (["--source", "the girl sang .", "--from-text", "a", "--to-text", "b", "--interpolate", "3"], "drop --class/--source"),
])
def test_bad_sampling_requests_of_a_paired_run_are_one_line_errors(source_run, tmp_path, args, message):
    out = tmp_path / "s.txt"
    res = run_cli("sample", str(source_run), *args, "--out", str(out))
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert res.stderr.strip().count("\n") == 0
    assert not out.exists()


def test_paired_run_with_a_short_source_file_exits_2_and_writes_nothing(tmp_path):
    cfg_dir = tmp_path / "data"
    cfg_dir.mkdir()
    (cfg_dir / "train.txt").write_text("a cat sat\nthe dog ran\n")
    (cfg_dir / "test.txt").write_text("a dog sat\n")
    (cfg_dir / "train.src").write_text("one cat\n")
    (cfg_dir / "test.src").write_text("a dog\n")
    runs = tmp_path / "runs"
    res = run_cli("train", CONFIG, *TINY, f"log.dir={runs}", "data.source=files", f"data.root={cfg_dir}",
                  "data.train=train.txt", "data.test=test.txt", "data.train_sources=train.src",
                  "data.test_sources=test.src")
    assert res.returncode == 2 and "has 1 sentences but" in res.stderr
    assert res.stderr.strip().count("\n") == 0
    assert not runs.exists()


@pytest.mark.slow  # two torchrun ranks start up
def test_torchrun_refuses_a_sentence_conditioned_run_before_writing(tmp_path):
    from conftest import torchrun

    res = torchrun("train", CONFIG, *TINY, f"log.dir={tmp_path}")
    assert res.returncode != 0
    assert "generator.condition=sentence runs in one process for now" in res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # trains a run in a subprocess (the module fixture) and resumes a cut copy
def test_sentence_conditioned_resume_is_bitwise(source_run, tmp_path):
    """The run cut back to its MLE phase's checkpoint and resumed: its adversarial phase ends as the whole run's did."""
    import shutil

    from conftest import assert_resume_ends_as_reference

    resumed = tmp_path / "cut"
    shutil.copytree(source_run, resumed)
    history = checkpoint.history(resumed / "checkpoints")
    assert len(history) >= 2
    for path in history:
        if checkpoint.load(path)["progress"]["step"] > 0:  # every adversarial step's state
            path.unlink()
    assert checkpoint.history(resumed / "checkpoints")
    final = assert_resume_ends_as_reference(source_run, resumed, 3)
    assert "source_pool" in final["generator"]


@pytest.mark.slow  # trains a run in a subprocess (the module fixture)
def test_starting_a_run_from_a_sentence_conditioned_one_is_a_one_line_error(source_run, tmp_path):
    res = run_cli("train", str(REPO / "configs" / "quickstart.yaml"), "log.progress=false", f"log.dir={tmp_path}",
                  f"generator.init_from={source_run}", "mle.epochs=0", "generator.emb_dim=16", "generator.hidden_dim=24",
                  "generator.latent_dim=8")
    last = res.stderr.strip().splitlines()[-1]  # after the warm start's vocabulary line
    assert res.returncode == 2 and last.startswith("textgan: error:") and "is conditioned on source sentences" in last
    assert list(tmp_path.iterdir()) == []
