"""generator.init_from: a run starts from another run's generator and vocabulary (the pretrain-once,
many-GANs workflow), through the real CLI; bad sources are one-line errors that create nothing."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import FAST, REPO, run_cli
from textgan.metrics.nll import sequence_nll
from textgan.sample import load_generator

pytestmark = pytest.mark.slow  # each test trains a source run and a warm-started one

MLE = str(REPO / "configs" / "coco_mle.yaml")
GAN = str(REPO / "configs" / "coco_rsgan.yaml")


@pytest.fixture(scope="module")
def pretrained(data_root, tmp_path_factory):
    """A plain language model (prior none) after one MLE epoch on tiny."""
    runs = tmp_path_factory.mktemp("src")
    res = run_cli("train", MLE, *FAST, f"log.dir={runs}")
    assert res.returncode == 0, res.stderr
    return runs / "coco_mle"


def test_latent_gan_starts_exactly_at_the_pretrained_language_model(pretrained, tmp_path):
    res = run_cli("train", GAN, *FAST, f"log.dir={tmp_path}", f"generator.init_from={pretrained}",
                  "mle.epochs=0", "adversarial.steps=0", "data.train=tiny/test.txt")
    assert res.returncode == 0, res.stderr
    assert "generator initialised from" in res.stderr
    run = tmp_path / "coco_rsgan"
    # the source's vocabulary, although this run's training file differs
    assert json.loads((run / "vocab.json").read_text()) == json.loads((pretrained / "vocab.json").read_text())
    src, dst = load_generator(pretrained), load_generator(run)
    for name, value in src.generator.state_dict().items():
        assert torch.equal(dst.generator.state_dict()[name], value), name
    assert dst.generator.prior == "normal" and not dst.generator.latent_proj.weight.any()
    tokens = torch.tensor([[5, 6, 7, 2, 0], [8, 9, 2, 0, 0]])
    lengths = torch.tensor([4, 3])
    z = dst.generator.sample_latent(2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(sequence_nll(dst.generator, tokens, lengths, z),
                               sequence_nll(src.generator, tokens, lengths, src.generator.prior_mean(2)))


def test_adversarial_training_moves_on_from_the_source(pretrained, tmp_path):
    res = run_cli("train", GAN, *FAST, f"log.dir={tmp_path}", f"generator.init_from={pretrained}",
                  "mle.epochs=0", "adversarial.steps=3", "eval.every=0")
    assert res.returncode == 0, res.stderr
    dst = load_generator(tmp_path / "coco_rsgan")
    src = load_generator(pretrained)
    assert not torch.equal(dst.generator.out.weight, src.generator.out.weight)
    assert dst.generator.latent_proj.weight.any()  # z is being used


@pytest.mark.parametrize("override, needle", [
    ("generator.hidden_dim=48", "generator.hidden_dim=32"),
    ("generator.emb_dim=8", "generator.emb_dim=16"),
])
def test_architecture_mismatch_is_one_line_exit_2(pretrained, tmp_path, override, needle):
    res = run_cli("train", GAN, *FAST, f"log.dir={tmp_path}", f"generator.init_from={pretrained}", override)
    assert res.returncode == 2
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "coco_rsgan").exists()


def test_latent_source_cannot_seed_a_plain_model(data_root, tmp_path):
    src = tmp_path / "src"
    res = run_cli("train", GAN, *FAST, f"log.dir={src}", "adversarial.steps=0")
    assert res.returncode == 0, res.stderr
    res = run_cli("train", MLE, *FAST, f"log.dir={tmp_path / 'dst'}", f"generator.init_from={src / 'coco_rsgan'}")
    assert res.returncode == 2 and "latent" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("make", ["missing", "garbage"])
def test_missing_or_damaged_source_is_one_line_exit_2(data_root, tmp_path, make):
    source = tmp_path / "source.pt"
    if make == "garbage":
        source.write_bytes(b"not a checkpoint")
    res = run_cli("train", GAN, *FAST, f"log.dir={tmp_path / 'runs'}", f"generator.init_from={source}")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert str(source) in res.stderr
    assert not (tmp_path / "runs").exists()


def test_tied_source_cannot_seed_an_untied_model_and_seeds_a_tied_one(data_root, tmp_path):
    """A tied generator's one matrix cannot become two without saying so (and an untied state
    loaded into a tied model would keep only one of its matrices): a one-line error naming the
    setting; with the tie on both sides the run starts from the source's shared matrix."""
    tie = ["generator.emb_dim=32", "generator.hidden_dim=32", "generator.tie_embeddings=true"]
    res = run_cli("train", MLE, *FAST, f"log.dir={tmp_path / 'src'}", *tie)
    assert res.returncode == 0, res.stderr
    src = tmp_path / "src" / "coco_mle"
    res = run_cli("train", MLE, *FAST, f"log.dir={tmp_path / 'dst'}", f"generator.init_from={src}",
                  "generator.emb_dim=32", "generator.hidden_dim=32", "mle.epochs=0")
    assert res.returncode == 2 and "generator.tie_embeddings=True" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "dst").exists()
    res = run_cli("train", MLE, *FAST, f"log.dir={tmp_path / 'ok'}", f"generator.init_from={src}", *tie, "mle.epochs=0")
    assert res.returncode == 0, res.stderr
    loaded = load_generator(tmp_path / "ok" / "coco_mle").generator
    assert loaded.embedding.weight is loaded.out.weight
    torch.testing.assert_close(loaded.out.weight, load_generator(src).generator.out.weight)
