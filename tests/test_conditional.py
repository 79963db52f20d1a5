"""Conditional generation through the initial state (issue 48, item 6): the grammar's labels, label
files, the class-conditioned generator and projection discriminator, the class-accuracy metric,
and the CLI and API end to end, with their one-line errors."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import FAST, REPO, assert_samples_are_prefixes, run_cli, trained_run
from textgan import checkpoint, config
from textgan.config import ConfigError
from textgan.corpus import prepare
from textgan.data import DataError
from textgan.grammar import LABELS, sample_grammar, sample_grammar_labelled
from textgan.models import build_discriminator, build_generator
from textgan.models.generator import Generator

CONFIG = str(REPO / "configs" / "quickstart_conditional.yaml")
TINY = ["data.num_train=300", "data.num_test=60", "generator.emb_dim=16", "generator.hidden_dim=24",
        "generator.latent_dim=8", "discriminator.emb_dim=16", "discriminator.num_rep=16",
        "discriminator.num_filters=[8, 8, 8, 8]", "mle.epochs=1", "adversarial.steps=4",
        "adversarial.d_steps=1", "adversarial.batch_size=16", "mle.batch_size=32", "eval.num_samples=30",
        "eval.latent_draws=2", "log.progress=false"]


# ------------------------------------------------------------------------------------ data

def test_grammar_labels_go_with_the_same_sentences_as_unlabelled_sampling():
    sentences, labels = sample_grammar_labelled(300, seed=5)
    assert sentences == sample_grammar(300, seed=5)
    assert len(labels) == 300 and set(labels) == set(LABELS)  # every class occurs in 300 sentences


def test_grammar_label_is_the_main_verbs_object():
    sentences, labels = sample_grammar_labelled(2000, seed=1)
    vi = set("slept ran smiled waited arrived left sang jumped laughed danced walked played sat stopped".split())
    vt_thing = set("carried dropped held bought lost kept moved hid took cleaned".split())
    for tokens, label in zip(sentences, labels):
        if tokens[0] in {"anna", "tom", "maria", "sam", "lucy", "ben", "emma", "jack"}:  # Name VP: verb second
            verb = tokens[1]
            assert (verb in vi) == (label == "no_object"), (tokens, label)
            if verb in vt_thing:
                assert label == "thing_object", (tokens, label)


def _files_cfg(tmp_path: Path, train_labels: list[str], test_labels: list[str], **extra) -> config.Config:
    (tmp_path / "train.txt").write_text("a cat sat\nthe dog ran\na man ate bread\nthe cat slept\n")
    (tmp_path / "test.txt").write_text("a dog sat\nthe man ran\n")
    (tmp_path / "train.lab").write_text("".join(f"{x}\n" for x in train_labels))
    (tmp_path / "test.lab").write_text("".join(f"{x}\n" for x in test_labels))
    overrides = [f"data.root={tmp_path}", "data.train=train.txt", "data.test=test.txt",
                 "data.train_labels=train.lab", "data.test_labels=test.lab", "generator.conditional=true",
                 *[f"{k}={v}" for k, v in extra.items()]]
    return config.load(None, overrides)


def test_label_files_become_class_ids_in_sorted_name_order(tmp_path):
    cfg = _files_cfg(tmp_path, ["pets", "pets", "people", "pets"], ["pets", "people"])
    corpus = prepare(cfg.data, seed=0)
    assert corpus.label_names == ["people", "pets"]
    assert corpus.train.labels.tolist() == [1, 1, 0, 1]
    assert corpus.test.labels.tolist() == [1, 0]


def test_a_validation_split_keeps_each_label_with_its_sentence(tmp_path):
    cfg = _files_cfg(tmp_path, ["a", "b", "c", "d"], ["a", "b"])
    cfg.data.valid_frac = 0.5
    corpus = prepare(cfg.data, seed=0)
    by_sentence = {"a cat sat": "a", "the dog ran": "b", "a man ate bread": "c", "the cat slept": "d"}
    for enc, sentences in ((corpus.valid, corpus.valid_sentences),):
        for sent, label in zip(sentences, enc.labels.tolist()):
            assert corpus.label_names[label] == by_sentence[" ".join(sent)]
    assert sorted(corpus.train.labels.tolist() + corpus.valid.labels.tolist()) == [0, 1, 2, 3]


def test_dropped_long_sentences_drop_their_labels(tmp_path):
    cfg = _files_cfg(tmp_path, ["x", "y", "z", "w"], ["x", "y"], **{"data.max_len": 4, "data.long_policy": "drop"})
    corpus = prepare(cfg.data, seed=0)
    assert corpus.train.tokens.shape[0] == corpus.train.labels.shape[0] == 3  # "a man ate bread" + EOS is 5
    assert [corpus.label_names[i] for i in corpus.train.labels.tolist()] == ["x", "y", "w"]


@pytest.mark.parametrize("train_labels, test_labels, message", [
    (["a", "b", "a"], ["a", "b"], "has 3 labels but"),
    (["a", "b", "a", "b"], ["a", "c"], "test label 'c' is not a class of the training labels (a, b)"),
])
def test_bad_label_files_are_one_line_errors(tmp_path, train_labels, test_labels, message):
    cfg = _files_cfg(tmp_path, train_labels, test_labels)
    with pytest.raises(DataError) as err:
        prepare(cfg.data, seed=0)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("overrides, key", [
    (["generator.conditional=true"], "a conditional run without labels"),
    (["generator.conditional=true", "data.source=oracle"], "the oracle corpus"),
    (["data.train_labels=x.txt"], "data.train_labels: labels are read only by a conditional run"),
    (["generator.conditional=true", "data.source=grammar", "data.test_labels=x"], "the grammar labels its own"),
    (["generator.conditional=true", "data.source=grammar", "mle.objective=elbo"], "mle.objective"),
    (["generator.conditional=true", "data.train_labels=a", "data.test_labels=b", "data.valid_labels=c"],
     "data.valid_labels: labels data.valid's sentences"),
    (["generator.conditional=true", "data.source=grammar", "adversarial.loss=wgan_gp"], "adversarial.loss"),
    (["discriminator.conditioning=auxiliary"], "discriminator.conditioning: auxiliary is read only by a conditional"),
    (["generator.conditional=true", "data.source=grammar", "adversarial.class_weight=2"],
     "adversarial.class_weight: is read only by discriminator.conditioning=auxiliary"),
    (["generator.conditional=true", "data.source=grammar", "discriminator.conditioning=auxiliary",
      "adversarial.class_weight=-1"], "adversarial.class_weight: must be >= 0"),
    (["discriminator.conditioning=classifier"], "discriminator.conditioning"),
])
def test_conditional_config_mistakes_are_one_line_errors(overrides, key):
    with pytest.raises(ConfigError) as err:
        config.load(None, overrides)
    assert key in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------ models

def _generator(classes: int, core: str = "lstm", prior: str = "normal") -> Generator:
    torch.manual_seed(0)
    cfg = config.GeneratorConfig(emb_dim=8, hidden_dim=12, num_layers=2 if core == "lstm" else 1, latent_dim=5,
                                 prior=prior, core=core, head_size=6, num_heads=2)
    return build_generator(cfg, vocab_size=20, banned=[0, 1], num_classes=classes)


def _flat(state) -> torch.Tensor:
    return torch.cat([s.flatten() for s in state]) if isinstance(state, tuple) else state.flatten()


@pytest.mark.parametrize("core", ["lstm", "relational_memory"])
@pytest.mark.parametrize("prior", ["normal", "none"])
def test_initial_state_depends_on_the_class(core, prior):
    g = _generator(3, core, prior)
    z = g.sample_latent(4, torch.Generator().manual_seed(1))
    assert z.shape == (4, 5 + 3)
    same = [_flat(g.init_state(g.with_class(z, torch.full((4,), c)))) for c in range(3)]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not torch.allclose(same[a], same[b])
    again = _flat(g.init_state(g.with_class(z, torch.full((4,), 1))))
    assert torch.equal(again, same[1])
    if prior == "normal":  # and on z, at a fixed class
        other = g.with_class(g.sample_latent(4, torch.Generator().manual_seed(2)), torch.full((4,), 1))
        assert not torch.allclose(_flat(g.init_state(other)), same[1])


@pytest.mark.parametrize("core", ["lstm", "relational_memory"])
def test_without_classes_the_state_is_z_projected_exactly_as_before(core):
    g = _generator(0, core)
    assert not hasattr(g, "class_embedding") and "class_prior" not in g.state_dict()
    z = g.sample_latent(4, torch.Generator().manual_seed(1))
    assert z.shape == (4, 5) and torch.equal(z, torch.randn(4, 5, generator=torch.Generator().manual_seed(1)))
    state = g.init_state(z)
    if core == "lstm":
        hc = g.latent_proj(z).view(4, 2, 2, 12).permute(1, 2, 0, 3)
        assert torch.equal(state[0], hc[0]) and torch.equal(state[1], hc[1])
    else:
        expected = g.memory.initial_memory(4, z.device, z.dtype) + g.latent_proj(z).view(state.shape)
        assert torch.equal(state, expected)


def test_a_single_class_adds_one_constant_to_every_state():
    g = _generator(1)
    z = g.sample_latent(6, torch.Generator().manual_seed(3))
    assert torch.equal(z[:, 5:], torch.ones(6, 1))  # the one class is always drawn
    shift = g.state_vector(z) - g.latent_proj(z[:, :5])
    assert torch.allclose(shift, g.class_embedding.weight.expand(6, -1))


def test_classes_are_drawn_from_the_class_prior():
    g = _generator(3)
    g.class_prior.copy_(torch.tensor([0.0, 0.25, 0.75]))
    classes = g.classes_of(g.sample_latent(4000, torch.Generator().manual_seed(0)))
    counts = torch.bincount(classes, minlength=3).float() / 4000
    assert counts[0] == 0 and abs(counts[1] - 0.25) < 0.03 and abs(counts[2] - 0.75) < 0.03


def test_mle_gradient_reaches_the_class_embedding_through_the_accelerated_loss():
    from textgan import accel

    g = _generator(3)
    accel.apply(g, None, "auto")
    tokens = torch.randint(2, 20, (4, 7))
    z = g.with_class(g.sample_latent(4), torch.tensor([0, 0, 2, 2]))
    g.mle_loss(tokens, z, pad_id=0).backward()
    grad = g.class_embedding.weight.grad
    assert grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0 and torch.equal(grad[1], torch.zeros_like(grad[1]))


@pytest.mark.parametrize("kind", ["relgan_cnn", "lstm"])
def test_projection_discriminator_adds_the_class_embeddings_inner_product(kind):
    cfg = config.DiscriminatorConfig(kind=kind, emb_dim=8, num_rep=4, num_filters=[4, 4, 4, 4], hidden_dim=6,
                                     dropout=0.0)
    torch.manual_seed(0)
    plain = build_discriminator(cfg, 20)
    torch.manual_seed(0)
    cond = build_discriminator(cfg, 20, num_classes=2)
    x = torch.softmax(torch.randn(3, 9, 20), -1)
    base = plain(x)
    with torch.no_grad():
        cond.projection.embed.weight.zero_()
    assert torch.equal(cond(x, labels=torch.tensor([0, 1, 1])), base)  # the same weights otherwise
    with torch.no_grad():
        cond.projection.embed.weight[1] = 1.0  # <e_1, phi> = sum of the features
    out = cond(x, labels=torch.tensor([0, 1, 1]))
    assert torch.equal(out[0], base[0]) and bool((out[1:] != base[1:]).all())
    with pytest.raises(ValueError, match="pass labels"):
        cond(x)


@pytest.mark.parametrize("kind", ["relgan_cnn", "lstm"])
def test_auxiliary_classifier_is_the_cross_entropy_of_its_head_beside_an_unconditional_logit(kind):
    """conditioning=auxiliary: the logit is the unconditional discriminator's (labels ignored) and
    `scores` adds -log softmax(mean over representations of W phi + b)[c], phi the features the
    output layer reads."""
    cfg = config.DiscriminatorConfig(kind=kind, emb_dim=8, num_rep=4, num_filters=[4, 4, 4, 4], hidden_dim=6,
                                     dropout=0.0, conditioning="auxiliary")
    torch.manual_seed(0)
    plain = build_discriminator(cfg, 20)
    torch.manual_seed(0)
    aux = build_discriminator(cfg, 20, num_classes=3)
    assert aux.projection is None and aux.aux.out.weight.shape[0] == 3
    x = torch.softmax(torch.randn(5, 9, 20), -1)
    labels = torch.tensor([0, 1, 2, 2, 1])
    logits, nll = aux.scores(x, labels)
    assert torch.equal(logits, plain(x)) and torch.equal(aux(x), logits) and torch.equal(aux(x, labels=labels), logits)
    phi, _ = aux.features_and_logits(x)
    phi = phi.view(5, -1, aux.aux.out.in_features)  # (B, R, P)
    w, b = aux.aux.out.weight.double(), aux.aux.out.bias.double()
    class_logits = torch.stack([phi[i].double() @ w.T + b for i in range(5)]).mean(1)  # (B, C)
    expected = -class_logits.log_softmax(-1)[torch.arange(5), labels]
    assert torch.allclose(nll.double(), expected, atol=1e-6)
    projected = build_discriminator(config.DiscriminatorConfig(kind=kind, emb_dim=8, num_rep=4,
                                                               num_filters=[4, 4, 4, 4], hidden_dim=6), 20, num_classes=3)
    assert projected.aux is None and projected.scores(x, labels).class_nll is None


def _aux_trainer(tmp_path: Path, *overrides: str):
    from textgan.monitor import Monitor
    from textgan.train import Trainer

    cfg = config.load(CONFIG, [*TINY, "discriminator.conditioning=auxiliary", "discriminator.dropout=0",
                               "adversarial.batch_size=64", *overrides])
    return Trainer(cfg, prepare(cfg.data, cfg.run.seed), tmp_path, Monitor(tmp_path, progress=False, enabled=False))


def _head_accuracy(tr) -> float:
    """How often D's auxiliary head reads the class of the real training sentences."""
    train = tr.corpus.train
    dists = torch.nn.functional.one_hot(train.tokens, len(tr.corpus.vocab)).float()
    with torch.no_grad():
        phi, _ = tr.D.features_and_logits(dists)
        guess = tr.D.aux(phi.view(len(train.tokens), -1, tr.D.aux.out.in_features)).argmax(-1)
    return float((guess == train.labels).float().mean())


def test_auxiliary_d_steps_learn_the_real_classes_and_g_steps_add_the_fakes_class_term(tmp_path, data_root):
    tr = _aux_trainer(tmp_path / "a", "adversarial.d_lr=0.01")
    before = _head_accuracy(tr)
    nll = [tr.algorithm.d_step(1.0)["adv/d_class_nll"] for _ in range(100)]
    assert sum(nll[-10:]) < sum(nll[:10]) - 3  # 0.3 nats a sentence lower
    assert _head_accuracy(tr) > max(0.75, before + 0.3)  # the commonest class alone: 0.42
    # class_weight 0: the head gets no gradient in D's steps
    idle = _aux_trainer(tmp_path / "b", "adversarial.class_weight=0", "adversarial.d_lr=0.01")
    head = idle.D.aux.out.weight.detach().clone()
    idle.algorithm.d_step(1.0)
    assert torch.equal(idle.D.aux.out.weight, head)
    # G: the same samples (the same seed), the class term changes the update and only by itself
    with_term, without = _aux_trainer(tmp_path / "c"), _aux_trainer(tmp_path / "d", "adversarial.class_weight=0")
    out_a, out_b = with_term.algorithm.g_step(0.5), without.algorithm.g_step(0.5)
    assert out_a["adv/g_loss"] == out_b["adv/g_loss"] and out_a["adv/g_class_nll"] == out_b["adv/g_class_nll"] > 0
    moved = [not torch.equal(a, b) for a, b in zip(with_term.G.parameters(), without.G.parameters())]
    assert any(moved)
    assert all(torch.equal(a, b) for a, b in zip(with_term.D.parameters(), without.D.parameters()))


# ------------------------------------------------------------------------------------ metric

def test_classifier_reads_the_grammar_labels_and_is_cached(tmp_path):
    from textgan.metrics.class_accuracy import cached_classifier

    cfg = config.load(None, ["data.source=grammar", "data.num_train=2000", "data.num_test=300",
                             "generator.conditional=true"])
    corpus = prepare(cfg.data, seed=0)
    path = tmp_path / "clf.pt"
    clf = cached_classifier(path, corpus.train, len(corpus.vocab), corpus.label_names)
    acc = float((clf.predict(corpus.test.tokens, corpus.test.lengths) == corpus.test.labels).float().mean())
    assert acc > 0.75  # well above the 0.42 of always answering the commonest class
    stamp = path.stat().st_mtime_ns
    again = cached_classifier(path, corpus.train, len(corpus.vocab), corpus.label_names)
    assert path.stat().st_mtime_ns == stamp
    assert all(torch.equal(a, b) for a, b in zip(clf.state_dict().values(), again.state_dict().values()))


# ------------------------------------------------------------------------------------ CLI and API

@pytest.fixture(scope="module")
def cond_run(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory.mktemp("cond"), CONFIG, *TINY, "run.seed=3")


@pytest.mark.slow  # trains a run in a subprocess (the module fixture)
def test_conditional_run_end_to_end(cond_run):
    state = checkpoint.load(checkpoint.newest(cond_run / "checkpoints"))
    assert checkpoint.read_labels(state) == list(LABELS)
    assert "class_embedding.weight" in state["generator"] and "projection.embed.weight" in state["discriminator"]
    assert (cond_run / "class_classifier.pt").is_file()
    flat = checkpoint.read_metrics(state)  # the final evaluation's
    for name in ("class_acc", "class_acc_real", *[f"class_acc_{n}" for n in LABELS]):
        assert 0.0 <= flat[name] <= 1.0, name
    assert_samples_are_prefixes(cond_run, "--class", "thing_object")
    res = run_cli("eval", str(cond_run), "--num", "30")
    assert res.returncode == 0, res.stderr
    assert "class_acc_person_object" in res.stdout


@pytest.mark.slow  # trains a run in a subprocess
def test_auxiliary_classifier_run_logs_both_class_terms_and_samples_a_class(tmp_path):
    from conftest import run_scalars

    res = run_cli("train", CONFIG, *TINY, f"log.dir={tmp_path}", "discriminator.conditioning=auxiliary",
                  "adversarial.class_weight=0.5")
    assert res.returncode == 0, res.stderr
    run = tmp_path / "quickstart_conditional"
    state = checkpoint.load(checkpoint.newest(run / "checkpoints"))
    assert "aux.out.weight" in state["discriminator"]
    assert not any(k.startswith("projection.") for k in state["discriminator"])
    scalars = run_scalars(run)
    for tag in ("adv/d_class_nll", "adv/g_class_nll"):
        assert len(scalars[tag]) == 4 and all(0 < v < 20 for v in scalars[tag]), tag
    assert 0.0 <= checkpoint.read_metrics(state)["class_acc"] <= 1.0
    res = run_cli("sample", str(run), "--class", "no_object", "--num", "3", "--seed", "1")
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 3, res.stderr


@pytest.mark.slow  # trains a run in a subprocess (the module fixture)
def test_sampling_an_unknown_class_is_a_one_line_error_and_writes_nothing(cond_run, tmp_path):
    out = tmp_path / "s.txt"
    res = run_cli("sample", str(cond_run), "--class", "robots", "--out", str(out))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "unknown class 'robots'" in res.stderr
    assert "no_object, person_object, thing_object" in res.stderr
    assert not out.exists()


def test_class_on_an_unconditional_run_is_a_one_line_error(tmp_path, data_root):
    from conftest import untrained_run

    run = untrained_run(tmp_path / "plain")
    res = run_cli("sample", str(run), "--class", "a")
    assert res.returncode == 2 and "not a conditional run" in res.stderr
    assert res.stderr.strip().count("\n") == 0


def test_conditional_run_without_labels_exits_2_and_writes_nothing(tmp_path, data_root):
    res = run_cli("train", str(REPO / "configs" / "coco_mle.yaml"), *FAST, f"log.dir={tmp_path}",
                  "generator.conditional=true")
    assert res.returncode == 2 and "without labels" in res.stderr
    assert res.stderr.strip().count("\n") == 0
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("train_labels, test_labels, message", [
    ("x\n", "x\n", "has 1 labels but"),
    ("x\ny\n", "z\n", "test label 'z' is not a class of the training labels (x, y)"),
])
def test_bad_label_files_exit_2_and_write_nothing(tmp_path, train_labels, test_labels, message):
    cfg_dir = tmp_path / "data"
    cfg_dir.mkdir()
    (cfg_dir / "train.txt").write_text("a cat sat\nthe dog ran\n")
    (cfg_dir / "test.txt").write_text("a dog sat\n")
    (cfg_dir / "train.lab").write_text(train_labels)
    (cfg_dir / "test.lab").write_text(test_labels)
    runs = tmp_path / "runs"
    res = run_cli("train", CONFIG, *TINY, f"log.dir={runs}", "data.source=files", f"data.root={cfg_dir}", "data.train=train.txt",
                  "data.test=test.txt", "data.train_labels=train.lab", "data.test_labels=test.lab",
                  "generator.conditional=true")
    assert res.returncode == 2 and message in res.stderr
    assert res.stderr.strip().count("\n") == 0
    assert not runs.exists()


@pytest.mark.slow  # trains a run in a subprocess (the module fixture)
def test_api_samples_a_class(cond_run):
    import textgan.api as tg
    from textgan.errors import UserError

    model = tg.load(cond_run)
    assert model.classes == list(LABELS)
    lines = model.sample(3, seed=2, cls="thing_object")
    cli = run_cli("sample", str(cond_run), "--class", "thing_object", "--num", "3", "--seed", "2")
    assert lines == cli.stdout.splitlines()
    assert len(model.sample(3, seed=2)) == 3  # classes drawn from the prior
    with pytest.raises(UserError, match="unknown class"):
        model.sample(2, cls="nope")


@pytest.mark.slow  # trains a run in a subprocess (the module fixture)
def test_conditional_resume_is_bitwise(cond_run, tmp_path):
    """Killed during the adversarial phase and resumed: the same final state as the whole run."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    args = [sys.executable, "-m", "textgan", "train", CONFIG, *TINY, f"log.dir={tmp_path}", "run.seed=3",
            "log.checkpoint_every=1"]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_dir = tmp_path / "quickstart_conditional"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if any(p.name != "step_00000000.pt" for p in checkpoint.history(run_dir / "checkpoints")):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = run_cli("train", "--resume", str(run_dir))
    assert res.returncode == 0, res.stderr
    a = checkpoint.load(checkpoint.newest(run_dir / "checkpoints"))
    b = checkpoint.load(checkpoint.newest(cond_run / "checkpoints"))
    assert a["progress"] == b["progress"]
    for part in ("generator", "discriminator"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    assert a["metrics"] == b["metrics"]
