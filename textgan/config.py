"""One typed config tree, a strict YAML loader and checked dotted overrides.

Every mistake (unknown key, wrong type, value out of range) becomes a
`ConfigError` naming the dotted key and what would be valid, so the CLI can
print one line and exit 2. Nothing is ever exec'd or eval'd.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from textgan.errors import UserError


class ConfigError(UserError):
    """A config value the user wrote is unknown, of the wrong type or out of range."""


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


@dataclass
class DataConfig:
    source: Literal["files", "oracle", "grammar"] = "files"  # text files, or a built-in corpus
    root: str = "data"  # folder that `train`, `test` and `oracle_params` are relative to
    train: str = "coco/train.txt"  # training sentences, one per line (source=files)
    test: str = "coco/test.txt"  # held-out sentences for evaluation (source=files)
    lowercase: bool = True  # lowercase before tokenizing
    tokenizer: Literal["whitespace", "nltk"] = "whitespace"  # nltk = word_tokenize, no model needed
    min_freq: int = 1  # rarer training tokens map to <unk>
    max_size: int = 0  # most frequent tokens kept in the vocabulary; 0 = all
    max_len: int = 0  # tokens per sequence including EOS; 0 = longest training sentence + 1
    long_policy: Literal["truncate", "drop"] = "truncate"  # what to do with longer sentences
    # with max_len 0, a training sentence longer than this many tokens is an error before training
    # (one malformed line would set a max_len no memory holds); 0 = no ceiling
    max_len_ceiling: int = 512
    # generator.init_from reuses another run's vocabulary: a larger share of this run's training
    # tokens outside it (read as <unk>) is an error; 1 = allow any
    max_oov: float = 0.25
    oracle_params: str = ""  # built-in oracle weights (.npz, relative to root); "" = random N(0,1)
    oracle_seq_len: int = 20  # length of oracle sequences (no EOS)
    num_train: int = 10000  # sentences generated for a built-in corpus's training set
    num_test: int = 2000  # sentences generated for a built-in corpus's test set
    # seeds a built-in corpus (the random oracle's weights and both sample sets, the grammar's
    # samples); -1 = run.seed. Set it to vary run.seed (initialisation, data order, latent and
    # Gumbel noise) over one fixed corpus, e.g. GAN phases warm-started from one MLE run
    seed: int = -1
    # fraction of the training sentences held out as a validation split: training-time
    # evaluations (TensorBoard valid/*), mle.patience and log.best_metric then score it instead
    # of the test set, so nothing chosen during training has seen the test set. 0 = no split
    # (they score the test set, TensorBoard eval/*); `textgan eval` scores the test set either way
    valid_frac: float = 0.0
    # seeds which training sentences form the validation split; fixed apart from run.seed and
    # data.seed, so runs warm-started from one another hold out the same sentences
    valid_seed: int = 0
    # a validation file instead (source=files, relative to root), e.g. captions of images neither
    # train nor test describe; "" = none. A split of the training file shares its images (on
    # COCO its NLL_gen is ~0.9 nats below the test set's), so a file of its own is the better proxy
    valid: str = ""
    # class labels for generator.conditional (source=files): one label per non-empty line, line i
    # the class of the i-th sentence of data.train / data.test / data.valid (relative to root);
    # source=grammar labels its sentences itself (textgan/grammar.py: what the main verb takes)
    train_labels: str = ""
    test_labels: str = ""
    valid_labels: str = ""
    # source sentences for generator.condition=sentence (source=files): one sentence per non-empty
    # line, line i the condition of the i-th sentence of data.train / data.test / data.valid
    # (relative to root), tokenized as they are; source=grammar pairs its sentences itself (a
    # source and another sentence about the same subject, textgan/grammar.py)
    train_sources: str = ""
    test_sources: str = ""
    valid_sources: str = ""

    def __post_init__(self) -> None:
        _check(0.0 <= self.valid_frac < 1.0, "valid_frac", "must be in [0, 1) (0 = no validation split)")
        _check(self.valid_seed >= 0, "valid_seed", "must be >= 0")
        _check(not (self.valid and self.valid_frac), "valid",
               "and valid_frac both name a validation split; set one of them (the other to \"\" or 0)")
        _check(not self.valid or self.source == "files", "valid", "needs source: files (a built-in corpus "
               "takes valid_frac)")
        for split in ("train", "test"):  # every evaluation scores the test split: a corpus needs one
            _check(self.source != "files" or bool(getattr(self, split).strip()), split,
                   "is empty: name the file of the " + ("training" if split == "train" else "held-out test")
                   + " sentences, relative to data.root")
        _check(self.min_freq >= 1, "min_freq", "must be >= 1")
        _check(self.max_size >= 0, "max_size", "must be >= 0 (0 = no limit)")
        _check(self.max_len >= 0, "max_len", "must be >= 0 (0 = longest sentence + 1)")
        _check(self.max_len_ceiling >= 0, "max_len_ceiling", "must be >= 0 (0 = no ceiling)")
        _check(0.0 <= self.max_oov <= 1.0, "max_oov", "must be in [0, 1] (1 = allow any share)")
        _check(self.oracle_seq_len >= 1, "oracle_seq_len", "must be >= 1")
        _check(self.num_train >= 1, "num_train", "must be >= 1")
        _check(self.num_test >= 1, "num_test", "must be >= 1")
        _check(self.seed >= -1, "seed", "must be >= 0, or -1 to use run.seed")


@dataclass
class GeneratorConfig:
    emb_dim: int = 32  # token embedding size E
    core: Literal["lstm", "relational_memory"] = "lstm"  # recurrent cell; relational_memory is RelGAN's
    hidden_dim: int = 32  # LSTM hidden size H (unused by the relational memory: its H is mem_slots * num_heads * head_size)
    num_layers: int = 1  # stacked LSTM layers L (relational memory: 1)
    mem_slots: int = 1  # relational memory: slots S (RelGAN: 1)
    num_heads: int = 2  # relational memory: attention heads (RelGAN: 2)
    head_size: int = 256  # relational memory: width per head (RelGAN: 256, so 512 outputs)
    latent_dim: int = 32  # size Z of the latent z that sets h0 and c0
    prior: Literal["normal", "uniform", "none"] = "normal"  # none = zero states, plain LM
    feedback: Literal["hard", "soft", "straight_through"] = "hard"  # input fed back when free running
    # randomness of free-running sampling (adversarial training, evaluation, `textgan sample`):
    # gumbel = each token drawn by Gumbel-max; none = no per-step noise, the argmax token, and the
    # discriminator sees softmax(logits / tau), so diversity must come from z (textGAN, Zhang et
    # al. 2017). Needs a prior other than none
    noise: Literal["gumbel", "none"] = "gumbel"
    dropout: float = 0.0  # dropout between LSTM layers (teacher-forced training only)
    # dropout on the core's teacher-forced inputs (embeddings) and outputs (before the output
    # layer), in training only; free-running samples never drop. Regularises a wide single-layer
    # LSTM that overfits a small corpus (COCO's held-out NLL_gen rises after ~3 epochs at hidden 128)
    io_dropout: float = 0.0
    # the output layer's weight is the embedding matrix (Press & Wolf 2017, Inan et al. 2017): V * E
    # fewer parameters, and every token's input and output vectors learn from both its roles, a
    # regulariser for a small corpus. Needs emb_dim equal to the core's output size
    tie_embeddings: bool = False
    init_from: str = ""  # run folder or checkpoint whose generator (and vocabulary) starts this run
    init_std: float = 0.0  # > 0: every embedding, LSTM and linear weight and bias ~ N(0, init_std) (SeqGAN: 0.1); 0: torch's defaults
    # a class label c and z together set the initial state (a learned class embedding added to
    # z's projection), and the discriminator is a projection discriminator on c (Miyato & Koyama
    # 2018); needs labelled data (data.train_labels and data.test_labels, or data.source grammar)
    conditional: bool = False
    # what the condition c is: "class", a label (above); "sentence", a source sentence read by an
    # encoder (a bidirectional LSTM) whose reading is added to z's projection, as a translation
    # decoder's state comes from its encoder; the discriminator projects the same reading
    # (data.train_sources and data.test_sources, or data.source grammar's sentence pairs)
    condition: Literal["class", "sentence"] = "class"

    @property
    def paired(self) -> bool:
        """Conditioned on source sentences: the corpus pairs each sentence with its source."""
        return self.conditional and self.condition == "sentence"

    def __post_init__(self) -> None:
        for name in ("emb_dim", "hidden_dim", "num_layers", "latent_dim", "mem_slots", "num_heads", "head_size"):
            _check(getattr(self, name) >= 1, name, "must be >= 1")
        _check(self.core == "lstm" or self.num_layers == 1, "num_layers",
               "must be 1 with core relational_memory (its depth is the attention and MLP)")
        _check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        _check(0.0 <= self.io_dropout < 1.0, "io_dropout", "must be in [0, 1)")
        _check(not self.tie_embeddings or self.emb_dim == self.core_output_dim(), "tie_embeddings",
               f"needs emb_dim ({self.emb_dim}) equal to the core's output size ({self.core_output_dim()}); "
               "set emb_dim to it or tie_embeddings to false")
        _check(self.init_std >= 0.0, "init_std", "must be >= 0 (0 keeps torch's default initialisation)")
        _check(self.noise == "gumbel" or self.prior != "none", "noise",
               "none needs a latent to vary the samples: set prior to normal or uniform, or noise to gumbel")

    def core_output_dim(self) -> int:
        """H, the width the output layer reads: hidden_dim, or the relational memory's S * heads * head size."""
        return self.hidden_dim if self.core == "lstm" else self.mem_slots * self.num_heads * self.head_size


@dataclass
class DiscriminatorConfig:
    kind: Literal["relgan_cnn", "lstm"] = "relgan_cnn"  # which discriminator class
    emb_dim: int = 64  # linear embedding of the (soft) one-hot input
    num_rep: int = 64  # RelGAN: emb_dim is split into this many representations
    filter_sizes: list[int] = field(default_factory=lambda: [2, 3, 4, 5])  # CNN widths in tokens
    num_filters: list[int] = field(default_factory=lambda: [300, 300, 300, 300])  # per width
    hidden_dim: int = 64  # LSTM discriminator hidden size
    dropout: float = 0.25  # before the output layer
    # spectral normalisation of every weight matrix (Miyato et al. 2018; RelGAN's --sn flag):
    # bounds the discriminator's Lipschitz constant, so it cannot win outright in a few steps
    spectral_norm: bool = False
    # relgan_cnn's highway weights: gated = a transform and a gate product (RelGAN's TensorFlow
    # code, Srivastava et al. 2015); shared = one product used as both (TextGAN-PyTorch's
    # RelGAN_D): half the highway's FLOPs, which are ~90 % of an adversarial step's at RelGAN's size
    highway: Literal["gated", "shared"] = "gated"
    # how a conditional run's discriminator reads the class (generator.conditional): projection
    # = the class embedding's inner product with the sentence features joins the logit (Miyato &
    # Koyama 2018); auxiliary = the logit ignores the class and a classifier head on the same
    # features learns the real sentences' classes, the generator rewarded for fakes it reads as
    # their own class (AC-GAN, Odena et al. 2017; as CatGAN/SentiGAN's class-aware D), weighted
    # by adversarial.class_weight
    conditioning: Literal["projection", "auxiliary"] = "projection"

    def __post_init__(self) -> None:
        _check(self.emb_dim >= 1, "emb_dim", "must be >= 1")
        _check(self.num_rep >= 1, "num_rep", "must be >= 1")
        _check(self.emb_dim % self.num_rep == 0, "num_rep", f"must divide emb_dim={self.emb_dim}")
        _check(len(self.filter_sizes) == len(self.num_filters) >= 1, "num_filters",
               "needs one entry per filter_sizes entry")
        _check(all(s >= 1 for s in self.filter_sizes), "filter_sizes", "widths must be >= 1")
        _check(all(n >= 1 for n in self.num_filters), "num_filters", "counts must be >= 1")
        _check(self.hidden_dim >= 1, "hidden_dim", "must be >= 1")
        _check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")


@dataclass
class GumbelConfig:
    mode: Literal["soft", "straight_through"] = "soft"  # what the discriminator sees of a fake token
    schedule: Literal["constant", "linear", "exponential", "sigmoid", "list"] = "exponential"
    tau_start: float = 1.0  # tau at step 0; tau divides the logits, larger is softer
    tau_end: float = 0.01  # tau after anneal_steps (RelGAN's beta_max=100 is tau_end=0.01)
    anneal_steps: int = 0  # steps over which tau moves; 0 = adversarial.steps
    values: list[float] = field(default_factory=list)  # schedule=list: tau from milestones[i] on
    milestones: list[int] = field(default_factory=list)  # schedule=list: first step of each value

    def __post_init__(self) -> None:
        _check(self.tau_start > 0 and math.isfinite(self.tau_start), "tau_start", "must be > 0")
        _check(self.tau_end > 0 and math.isfinite(self.tau_end), "tau_end", "must be > 0")
        _check(self.anneal_steps >= 0, "anneal_steps", "must be >= 0")
        _check(all(v > 0 for v in self.values), "values", "every tau must be > 0")
        if self.schedule == "list":
            _check(len(self.values) >= 1 and len(self.values) == len(self.milestones), "values",
                   "schedule=list needs as many values as milestones (at least one)")
            _check(self.milestones == sorted(self.milestones) and self.milestones[0] == 0,
                   "milestones", "must be increasing and start at 0")


@dataclass
class MLEConfig:
    epochs: int = 10  # teacher-forced pretraining epochs over the training set
    batch_size: int = 64  # sentences per batch
    lr: float = 1e-2  # Adam learning rate
    grad_clip: float = 5.0  # max gradient norm; 0 = no clipping
    # early stopping: MLE evaluations in a row without a lower held-out NLL_gen (validation split
    # with data.valid_frac, else test) before
    # pretraining ends; at its end (early or not) the generator goes back to the epoch with the
    # lowest one (kept as checkpoints/mle_best.pt), and the GAN phase starts from there. 0 = off
    patience: int = 0
    # with patience: each MLE evaluation without a lower held-out NLL_gen also multiplies the MLE
    # learning rate by this (reduce on plateau); 1 = keep it
    plateau_lr_factor: float = 1.0
    # nll: teacher-forced NLL with z drawn from the prior (z independent of the sentence, so the
    # decoder learns to ignore it); elbo: variational pretraining (Bowman et al. 2016), z drawn
    # from an encoder q(z | x) of the sentence and KL(q || prior) added (settings in latent.*),
    # so the decoder learns to use z. Needs generator.prior: normal
    objective: Literal["nll", "elbo"] = "nll"

    def __post_init__(self) -> None:
        _check(self.epochs >= 0, "epochs", "must be >= 0")
        _check(self.patience >= 0, "patience", "must be >= 0 (0 = train all epochs)")
        _check(0.0 < self.plateau_lr_factor <= 1.0, "plateau_lr_factor", "must be in (0, 1] (1 = off)")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")
        _check(self.lr > 0, "lr", "must be > 0")
        _check(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 = off)")


@dataclass
class AdversarialConfig:
    steps: int = 0  # adversarial iterations; 0 = MLE only (the baseline language model)
    loss: Literal["standard", "rsgan", "hinge", "lsgan", "wgan_gp"] = "rsgan"
    batch_size: int = 64  # real and fake sentences per step
    g_lr: float = 1e-4  # generator Adam learning rate
    d_lr: float = 1e-4  # discriminator Adam learning rate
    beta1: float = 0.9  # Adam beta1 for both
    beta2: float = 0.999  # Adam beta2 for both
    d_steps: int = 5  # discriminator updates per iteration
    g_steps: int = 1  # generator updates per iteration
    order: Literal["d_first", "g_first"] = "d_first"  # which updates come first in an iteration; RelGAN's code: g_first
    d_pretrain_steps: int = 0  # discriminator-only steps before the loop
    gp_weight: float = 10.0  # wgan_gp gradient penalty weight
    grad_clip: float = 5.0  # max gradient norm for both; 0 = off
    # weight of the teacher-forced NLL of a real batch (per token) added to every generator
    # update's adversarial loss: it anchors the generator to the data while the discriminator
    # sharpens it, trading some quality for held-out NLL_gen; 0 = the adversarial loss alone
    mle_weight: float = 0.0
    # adversarial steps that carry that term, counted from the first; later updates use the
    # adversarial loss alone (a warm phase that holds the data's fit while D learns); 0 = all steps
    mle_weight_steps: int = 0
    # decay of an exponential moving average of the generator's weights over the adversarial
    # steps (textgan/ema.py): evaluation, samples, best.pt and `textgan sample/eval` use the
    # average while the raw weights train on; 0.99 averages over ~100 steps; 0 = off
    g_ema: float = 0.0
    # latent reconstruction (InfoGAN, Chen et al. 2016; textGAN, Zhang et al. 2017): weight of
    # 0.5 * |z - head(x)|^2 (a unit-variance Gaussian's negative log-likelihood, per sentence)
    # of a head (latent.info_* sizes) recovering each fake's z from its relaxed one-hots, added
    # to every generator update and minimised by generator and head together; 0 = off
    info_weight: float = 0.0
    # batch-level feature matching for gumbel (textGAN, Zhang et al. 2017): weight of the kernel
    # MMD^2 (mmd.bandwidths / estimator) between the discriminator's sentence features of each
    # fake batch and a real batch, added to every generator update: a per-sentence score can be
    # met by one good sentence repeated, the batch's features only by fakes spread like the data;
    # 0 = off
    mmd_weight: float = 0.0
    # discriminator.conditioning=auxiliary: weight of the class cross-entropy, of real sentences
    # in D's loss and of the fakes (against the classes they were drawn for) in G's
    class_weight: float = 1.0
    # the GAN objective, one file in textgan/algorithms/: gumbel = RelGAN's, D scores the
    # generator's Gumbel-softmax relaxed samples and G's loss back-propagates through them;
    # seqgan = REINFORCE with Monte Carlo rollouts (Yu et al. 2017); maligan = the normalised
    # importance-weighted likelihood of the discriminator's odds (Che et al. 2017). The last two
    # sample discrete sentences, train D with binary cross-entropy (loss: standard) and take
    # their settings from policy_gradient.*; gumbel's from gumbel.*; textgan_mmd = textGAN's
    # feature matching (Zhang et al. 2017): G, fed back its soft-argmax, minimises a kernel MMD^2
    # between D's sentence features of real and fake batches (settings in mmd.*, tau in gumbel.*);
    # scratchgan = ScratchGAN's dense REINFORCE (de Masson d'Autume et al. 2019): an LSTM
    # discriminator scores every prefix, each token's return is the discounted sum of the later
    # per-step rewards, minus a moving-average baseline per step (settings in scratchgan.*)
    # leakgan = LeakGAN (Guo et al. 2018): a manager-worker generator reading D's leaked features,
    # rewarded through rollouts and trained with interleaved MLE (settings in leakgan.* and
    # policy_gradient.rollouts / d_samples / d_epochs)
    algorithm: Literal["gumbel", "seqgan", "maligan", "textgan_mmd", "scratchgan", "leakgan"] = "gumbel"

    def __post_init__(self) -> None:
        for name in ("steps", "d_pretrain_steps", "mle_weight_steps"):
            _check(getattr(self, name) >= 0, name, "must be >= 0")
        for name in ("batch_size", "d_steps", "g_steps"):
            _check(getattr(self, name) >= 1, name, "must be >= 1")
        _check(self.g_lr > 0, "g_lr", "must be > 0")
        _check(self.d_lr > 0, "d_lr", "must be > 0")
        _check(0 <= self.beta1 < 1, "beta1", "must be in [0, 1)")
        _check(0 <= self.beta2 < 1, "beta2", "must be in [0, 1)")
        _check(self.gp_weight >= 0, "gp_weight", "must be >= 0")
        _check(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 = off)")
        _check(self.mle_weight >= 0, "mle_weight", "must be >= 0 (0 = off)")
        _check(0 <= self.g_ema < 1, "g_ema", "must be in [0, 1) (0 = off)")
        _check(self.info_weight >= 0 and math.isfinite(self.info_weight), "info_weight", "must be >= 0 (0 = off)")
        _check(self.mmd_weight >= 0 and math.isfinite(self.mmd_weight), "mmd_weight", "must be >= 0 (0 = off)")
        _check(self.class_weight >= 0 and math.isfinite(self.class_weight), "class_weight", "must be >= 0")


@dataclass
class PolicyGradientConfig:
    """adversarial.algorithm seqgan and maligan (and leakgan: rollouts, d_samples, d_epochs):
    discrete samples, rewards from D."""
    # seqgan: Monte Carlo completions of each prefix scored by D, whose mean is that token's reward
    # (Yu et al. 2017: 16)
    rollouts: int = 16
    # seqgan: the rollout network is a delayed copy of the generator; after each generator update
    # every weight but the embedding moves to rate * its own + (1 - rate) * the generator's
    # (SeqGAN's code: 0.8; the embedding is copied). 0 = the rollouts use the generator itself
    rollout_update_rate: float = 0.8
    # each of adversarial.d_steps (and d_pretrain_steps) draws this many fakes and as many real
    # sentences, then trains D for d_epochs epochs over them in mixed, shuffled batches of
    # adversarial.batch_size (SeqGAN: 10000 fakes, 3 epochs); 0 = one batch of each
    d_samples: int = 0
    d_epochs: int = 1

    def __post_init__(self) -> None:
        _check(self.rollouts >= 1, "rollouts", "must be >= 1")
        _check(0.0 <= self.rollout_update_rate < 1.0, "rollout_update_rate",
               "must be in [0, 1) (0 = roll out with the generator itself)")
        _check(self.d_samples >= 0, "d_samples", "must be >= 0 (0 = adversarial.batch_size)")
        _check(self.d_epochs >= 1, "d_epochs", "must be >= 1")


@dataclass
class MMDConfig:
    """adversarial.algorithm textgan_mmd: the kernel MMD^2 the generator minimises (Zhang et al. 2017)."""
    # Gaussian kernel bandwidths sigma, in units of D's feature values: k(x, y) is the sum over them
    # of exp(-|x - y|^2 / (2 sigma^2)), so distances at several scales all pull (Li et al. 2015)
    bandwidths: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0, 16.0])
    # unbiased = the U-statistic (no k(x_i, x_i) terms; can be slightly negative), Gretton et al.
    # 2012's MMD^2_u; biased = the V-statistic over all pairs (>= 0, as textGAN's code computes it)
    estimator: Literal["unbiased", "biased"] = "unbiased"
    # lambda_m of textGAN's discriminator objective: D also maximises this times the MMD^2 of its
    # features on the batch (its features then separate real from fake); 0 = D's classification alone
    d_weight: float = 0.0
    # fixed = bandwidths in units of D's feature values; median = in units of the median distance
    # between the compared features (both batches pooled, no gradient through it; the median
    # heuristic of Gretton et al. 2012), so the kernels follow D's features as training rescales them
    bandwidth_unit: Literal["fixed", "median"] = "fixed"

    def __post_init__(self) -> None:
        _check(len(self.bandwidths) >= 1 and all(b > 0 and math.isfinite(b) for b in self.bandwidths),
               "bandwidths", "needs at least one bandwidth, each > 0 (e.g. [1, 2, 4, 8, 16])")
        _check(self.d_weight >= 0 and math.isfinite(self.d_weight), "d_weight", "must be >= 0 (0 = off)")


@dataclass
class ScratchGANConfig:
    """adversarial.algorithm scratchgan: dense per-step rewards (de Masson d'Autume et al. 2019)."""
    # gamma: the return of token t is sum over s >= t of gamma^(s - t) * r_s, r_s = 2 D(y_1..s) - 1
    # (ScratchGAN: 0.23, so a token answers mostly for its own prefix and the next one)
    discount: float = 0.23
    # the baseline b_t of step t after each generator update: decay * b_t + (1 - decay) * the
    # batch's mean return at step t (ScratchGAN's code: 0.08, nearly the last batch's mean)
    baseline_decay: float = 0.08
    # weight of 0.5 * the sum of the discriminator's squared weights added to its loss
    # (ScratchGAN's l2_disc: 1e-6); 0 = off
    d_l2: float = 0.0

    def __post_init__(self) -> None:
        _check(0.0 <= self.discount <= 1.0, "discount", "must be in [0, 1] (1 = undiscounted returns)")
        _check(0.0 <= self.baseline_decay < 1.0, "baseline_decay", "must be in [0, 1) (0 = the last batch's mean)")
        _check(self.d_l2 >= 0 and math.isfinite(self.d_l2), "d_l2", "must be >= 0 (0 = off)")


@dataclass
class LeakGANConfig:
    """adversarial.algorithm leakgan: the hierarchical generator and its updates (Guo et al. 2018)."""
    goal_steps: int = 4  # c: goals summed into w_t, and the horizon of the manager's feature change (paper: 4)
    goal_dim: int = 16  # k: the size of w_t, the columns of the worker's output matrix O_t (paper: 16)
    manager_hidden_dim: int = 0  # the manager LSTM's hidden size; 0 = generator.hidden_dim
    # delta of the bootstrapped rescaled activation: a token's reward is sigmoid(delta * (1/2 -
    # rank / B)) of its rollout value's rank among the batch's at that step (LeakGAN's code: 16)
    rescale_delta: float = 16.0
    # interleaved training: after every mle_every-th adversarial step, mle_batches supervised
    # updates (worker NLL plus the manager's cosine to the real feature changes) on real batches; 0 = none
    mle_every: int = 5
    mle_batches: int = 1
    # supervised updates of the same kind before the first generator update (after D's
    # d_pretrain_steps): the manager learns the real feature changes of the trained D
    pretrain_batches: int = 0

    def __post_init__(self) -> None:
        for name in ("goal_steps", "goal_dim", "mle_batches"):
            _check(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("manager_hidden_dim", "mle_every", "pretrain_batches"):
            _check(getattr(self, name) >= 0, name, "must be >= 0")
        _check(self.rescale_delta > 0 and math.isfinite(self.rescale_delta), "rescale_delta", "must be > 0")


@dataclass
class LatentConfig:
    """The networks and schedule that make z matter (mle.objective: elbo, adversarial.info_weight)."""
    encoder_emb_dim: int = 32  # q(z | x): its own token embedding size
    encoder_hidden_dim: int = 64  # q(z | x): LSTM hidden size (per direction)
    encoder_bidirectional: bool = True  # q(z | x): read the sentence both ways
    # MLE batches over which the KL weight rises linearly from 0 to 1 (Bowman et al.'s annealing:
    # the decoder first learns to read z, before the KL pulls q to the prior); 0 = weight 1 at once
    kl_anneal_steps: int = 0
    # free bits (Kingma et al. 2016), nats per latent dimension: the KL of each dimension, averaged
    # over the batch, counts as at least this much, so no gradient pushes a dimension below it and
    # the posterior cannot collapse to the prior; 0 = the plain KL
    free_bits: float = 0.0
    # share of the decoder's teacher-forced input tokens replaced by <unk> (Bowman et al. 2016):
    # the decoder cannot predict from the previous words alone and must read z; 0 = off
    word_dropout: float = 0.0
    info_emb_dim: int = 32  # reconstruction head: embedding size of the relaxed one-hots
    info_hidden_dim: int = 64  # reconstruction head: LSTM hidden size (per direction, bidirectional)
    # reconstruction head: Adam learning rate (betas of adversarial.*). Above the generator's: at
    # adversarial.g_lr the head stays near R^2 = 0 for the quickstart's 150 steps, and its gradient
    # then tells the generator nothing about z
    info_lr: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("encoder_emb_dim", "encoder_hidden_dim", "info_emb_dim", "info_hidden_dim"):
            _check(getattr(self, name) >= 1, name, "must be >= 1")
        _check(self.kl_anneal_steps >= 0, "kl_anneal_steps", "must be >= 0 (0 = no annealing)")
        _check(self.free_bits >= 0 and math.isfinite(self.free_bits), "free_bits",
               "must be >= 0 nats per dimension (0 = off)")
        _check(0.0 <= self.word_dropout < 1.0, "word_dropout", "must be in [0, 1) (0 = off)")
        _check(self.info_lr > 0 and math.isfinite(self.info_lr), "info_lr", "must be > 0")


@dataclass
class EvalConfig:
    every: int = 100  # adversarial steps between evaluations; 0 = only at the end
    mle_every: int = 1  # MLE epochs between evaluations; 0 = only at the end of MLE
    num_samples: int = 1000  # generated sentences scored per evaluation
    # the most samples an evaluation holds at once: with more, samples are scored in blocks of
    # this size (memory bounded whatever the number) and the metrics comparing samples with
    # each other (self_bleuN_loo, the texygen protocol's second set) are computed on the first
    # self_bleu_max samples, as metrics.json's computed_on records; at most this many, every
    # figure is the one of all samples at once
    self_bleu_max: int = 10000
    bleu_n: list[int] = field(default_factory=lambda: [2, 3, 4, 5])  # BLEU-n vs test, Self-BLEU-n
    num_references: int = 0  # test sentences used as BLEU references; 0 = all
    nll_gen: bool = True  # NLL of the test set under the generator
    latent_draws: int = 8  # K prior draws for the Monte Carlo NLL_gen
    sample_every: int = 100  # steps between fixed-z text samples in TensorBoard
    num_fixed: int = 8  # fixed-z samples shown each time
    # exact: every sample, leave-one-out Self-BLEU; texygen: the incumbent's BLEU (first 200
    # samples, Self-BLEU against a second sample set) and RelGAN's NLL_gen (per position, on the
    # training set); both: every one of these
    protocol: Literal["exact", "texygen", "both"] = "exact"
    # how much z decides a sentence (textgan/metrics/latent.py; TensorBoard latent/*): sentences
    # drawn for latent_mi_K (a lower bound on the mutual information I(z; x) in nats, at most
    # log K) and for latent_sensitivity / latent_token_change (shares that change when z is
    # redrawn at fixed Gumbel noise); 0 = neither
    latent_samples: int = 64
    latent_mi_k: int = 64  # K: latents each of those sentences is scored under, its own and K - 1 prior draws
    interp_pairs: int = 8  # pairs of prior draws walked for interp_distinct / interp_edit; 0 = off
    interp_steps: int = 8  # points on each of those paths, both ends included

    def __post_init__(self) -> None:
        _check(self.latent_samples >= 0, "latent_samples", "must be >= 0 (0 = no latent_mi or sensitivity)")
        _check(self.latent_mi_k >= 2, "latent_mi_k", "must be >= 2 (the bound compares z with K - 1 other draws)")
        _check(self.interp_pairs >= 0, "interp_pairs", "must be >= 0 (0 = no interpolation stats)")
        _check(self.interp_steps >= 2, "interp_steps", "must be >= 2 (a path's two ends)")
        _check(self.every >= 0, "every", "must be >= 0")
        _check(self.mle_every >= 0, "mle_every", "must be >= 0")
        _check(self.sample_every >= 0, "sample_every", "must be >= 0")
        _check(self.num_samples >= 2, "num_samples", "must be >= 2")
        _check(self.self_bleu_max >= 2, "self_bleu_max", "must be >= 2 (leave-one-out Self-BLEU needs two samples)")
        _check(all(1 <= n <= 8 for n in self.bleu_n), "bleu_n", "each n must be in 1..8")
        _check(self.num_references >= 0, "num_references", "must be >= 0 (0 = all)")
        _check(self.latent_draws >= 1, "latent_draws", "must be >= 1")
        _check(self.num_fixed >= 1, "num_fixed", "must be >= 1")


@dataclass
class LogConfig:
    dir: str = "runs"  # parent folder of run folders
    name: str = ""  # run folder name; "" = config file stem
    progress: bool = True  # tqdm progress bar on a terminal
    # seconds between progress lines (step, phase, losses, tau, steps/s, ETA) when stderr is not a
    # terminal (nohup, a scheduler, a pipe, CI); they also go to the run folder's train.log. 0 = none
    interval_s: float = 30.0
    checkpoint_every: int = 500  # adversarial steps between checkpoints; 0 = only at the end
    keep_last: int = 3  # step checkpoints kept (older ones are deleted)
    # also keep checkpoints/best.pt by this eval metric, e.g. bleu4_exact, as measured on the
    # evaluation split (validation with data.valid_frac, else test); "" = off
    best_metric: str = ""
    best_mode: Literal["max", "min"] = "max"  # whether a larger or smaller best_metric is better
    # only evaluations whose best_ceiling_metric is at most best_ceiling count for best.pt: with
    # nll_gen_mc8_tok and the MLE start's value, the best quality at no worse held-out NLL_gen
    best_ceiling_metric: str = ""
    best_ceiling: float = math.inf

    def __post_init__(self) -> None:
        _check(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0")
        _check(0 <= self.interval_s < math.inf, "interval_s", "must be a finite number of seconds >= 0 (0 = no lines)")
        _check(self.keep_last >= 1, "keep_last", "must be >= 1")
        _check(not self.best_ceiling_metric or bool(self.best_metric), "best_ceiling_metric",
               "bounds the evaluations that count for best.pt; set log.best_metric too")
        _check(not self.best_ceiling_metric or math.isfinite(self.best_ceiling), "best_ceiling",
               f"set a finite bound for log.best_ceiling_metric={self.best_ceiling_metric}")
        _check(bool(self.best_ceiling_metric) or self.best_ceiling == math.inf, "best_ceiling",
               "needs log.best_ceiling_metric, the metric it bounds")


@dataclass
class RunConfig:
    seed: int = 0  # seeds data order, initialisation, latent and Gumbel noise
    device: str = "cpu"  # cpu, cuda, cuda:N
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    # CPU: flush float values below 1.2e-38 to zero on all torch threads (textgan/accel/fpenv.py: a
    # trained generator's denormal activations made its MLE batches 8x slower); false keeps them
    flush_denormals: bool = True
    # float32 matrix products (torch.set_float32_matmul_precision): "highest" computes them in
    # float32; "medium" lets torch take bfloat16 products with float32 sums where the hardware has
    # them (CPUs with AMX or AVX512-BF16; CUDA), "high" TF32 on CUDA. Opt-in, as results change:
    # on this Xeon the RelGAN discriminator's highway product ran 2.4x faster, relative error 2e-3.
    matmul_precision: Literal["highest", "high", "medium"] = "highest"
    # speed only, never results (textgan/accel): auto = the C kernels that build (built at first use
    # with the machine's C compiler, cached in ~/.cache/textgan), where faster at this size, and
    # accel's torch versions elsewhere; native = every C kernel at any size, an error if one cannot
    # be built; compile = auto with torch.compile's conv+max instead of the C one; off = plain torch
    accel: Literal["auto", "native", "compile", "off"] = "auto"
    batch_is_global: bool = False  # torchrun: the batch sizes are global (split over ranks), not per rank
    nan_patience: int = 5  # consecutive non-finite updates before rolling back to the last checkpoint
    nan_rollbacks: int = 3  # rollbacks allowed before the run stops with a message
    nan_lr_factor: float = 0.5  # every learning rate is multiplied by this at each rollback

    def __post_init__(self) -> None:
        _check(self.threads >= 0, "threads", "must be >= 0")
        _check(self.nan_patience >= 1, "nan_patience", "must be >= 1")
        _check(self.nan_rollbacks >= 0, "nan_rollbacks", "must be >= 0 (0 = stop at the first divergence)")
        _check(0.0 < self.nan_lr_factor <= 1.0, "nan_lr_factor", "must be in (0, 1]")
        _check(self.device == "cpu" or self.device.startswith("cuda"), "device",
               "must be cpu, cuda or cuda:N")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    gumbel: GumbelConfig = field(default_factory=GumbelConfig)
    mle: MLEConfig = field(default_factory=MLEConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    policy_gradient: PolicyGradientConfig = field(default_factory=PolicyGradientConfig)
    mmd: MMDConfig = field(default_factory=MMDConfig)
    scratchgan: ScratchGANConfig = field(default_factory=ScratchGANConfig)
    leakgan: LeakGANConfig = field(default_factory=LeakGANConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        _check(self.mle.objective == "nll" or self.generator.prior == "normal", "mle.objective",
               f"elbo needs generator.prior: normal (its KL is to N(0, I)), not {self.generator.prior}; "
               "set generator.prior=normal or mle.objective=nll")
        _check(self.adversarial.info_weight == 0 or self.generator.prior != "none", "adversarial.info_weight",
               "recovers z, but generator.prior is none (no z); set a prior or info_weight=0")
        _check(self.mle.patience > 0 or self.mle.plateau_lr_factor == 1.0, "mle.plateau_lr_factor",
               "acts at mle.patience's evaluations; set mle.patience >= 1 too, or leave it at 1")
        _check_algorithm_options(self)
        _check_conditional(self)
        if self.mle.patience:  # it stops on the held-out NLL_gen of the MLE evaluations
            _check(self.eval.nll_gen and self.eval.mle_every >= 1, "mle.patience",
                   "needs eval.nll_gen: true and eval.mle_every >= 1 (it watches held-out NLL_gen); "
                   "set them, or mle.patience: 0")


def _given(data: DataConfig, kind: str) -> list[str]:
    """The data.*_labels or data.*_sources keys that name a file."""
    return [f"{split}_{kind}" for split in ("train", "test", "valid") if getattr(data, f"{split}_{kind}")]


def _check_conditional(cfg: "Config") -> None:
    """Labels or source sentences exactly where generator.conditional wants them, and only the
    settings it supports."""
    data, gen = cfg.data, cfg.generator
    labels, sources = _given(data, "labels"), _given(data, "sources")
    auxiliary = cfg.discriminator.conditioning == "auxiliary"
    _check(auxiliary or cfg.adversarial.class_weight == 1.0, "adversarial.class_weight",
           "is read only by discriminator.conditioning=auxiliary; set that, or remove class_weight")
    sentence = gen.conditional and gen.condition == "sentence"
    for given, wanted, what in ((labels, gen.conditional and not sentence, "labels are read only by a conditional run of classes"),
                                (sources, sentence, "source sentences are read only by generator.condition=sentence")):
        _check(wanted or not given, f"data.{given[0] if given else ''}",
               f"{what}; set generator.conditional=true (generator.condition={'sentence' if given is sources else 'class'}), "
               "or remove the file")
    if not gen.conditional:
        _check(not auxiliary, "discriminator.conditioning", "auxiliary is read only by a conditional run; "
               "set generator.conditional=true, or remove discriminator.conditioning")
        _check(gen.condition == "class", "generator.condition", "is read only by a conditional run; "
               "set generator.conditional=true, or remove generator.condition")
        return
    kind = "sources" if sentence else "labels"
    _check(data.source != "oracle", "generator.conditional", f"needs {'paired' if sentence else 'labelled'} "
           f"sentences; the oracle corpus has none: use data.source=grammar, or files with data.train_{kind} "
           f"and data.test_{kind}")
    _check(not (sentence and auxiliary), "discriminator.conditioning", "auxiliary classifies classes; a source "
           "sentence is no class: use the projection discriminator with generator.condition=sentence")
    _check(not (sentence and gen.init_from), "generator.init_from", "is not supported with generator.condition="
           "sentence yet (the source pool is the run's own training data); remove it")
    if data.source == "files":
        _check(bool(getattr(data, f"train_{kind}") and getattr(data, f"test_{kind}")), "generator.conditional",
               f"a conditional run without {kind}: set data.train_{kind} and data.test_{kind} (one "
               f"{'source sentence' if sentence else 'class'} per line, aligned with data.train and data.test), "
               "or data.source=grammar")
        _check(not data.valid or bool(getattr(data, f"valid_{kind}")), f"data.valid_{kind}",
               f"data.valid needs its {kind} in a conditional run; set data.valid_{kind}")
        _check(not getattr(data, f"valid_{kind}") or bool(data.valid), f"data.valid_{kind}",
               f"{'gives the sources of' if sentence else 'labels'} data.valid's sentences; set data.valid too, or "
               f"remove it (data.valid_frac keeps each training sentence's {kind[:-1]} with it)")
    else:
        given = labels + sources
        _check(not given, f"data.{given[0] if given else ''}", f"the grammar {'pairs' if sentence else 'labels'} "
               f"its own sentences; remove the {kind} files (they are for data.source=files)")
    for key, bad, why in (("mle.objective", cfg.mle.objective != "nll", "elbo"),
                          ("adversarial.info_weight", cfg.adversarial.info_weight != 0, "info_weight > 0"),
                          ("adversarial.mmd_weight", cfg.adversarial.mmd_weight != 0, "mmd_weight > 0"),
                          ("adversarial.algorithm", cfg.adversarial.algorithm != "gumbel", cfg.adversarial.algorithm),
                          ("adversarial.loss", cfg.adversarial.loss == "wgan_gp", "wgan_gp")):
        _check(not bad, key, f"{why} is not supported with generator.conditional yet; use its default, or "
               "generator.conditional=false")


# settings that only one family of adversarial.algorithm reads: set (away from their defaults)
# with another algorithm they are a mistake, not a no-op
GUMBEL_FIELDS = [("gumbel", f.name) for f in dataclasses.fields(GumbelConfig)]  # textgan_mmd's tau too
GUMBEL_TERMS = [("adversarial", "gp_weight"), ("adversarial", "mle_weight"), ("adversarial", "mle_weight_steps"),
                ("adversarial", "info_weight"), ("adversarial", "mmd_weight")]  # terms of gumbel's losses
GUMBEL_ONLY = GUMBEL_FIELDS + GUMBEL_TERMS
SEQGAN_ONLY = [("policy_gradient", "rollouts"), ("policy_gradient", "rollout_update_rate")]
POLICY_GRADIENT = [("policy_gradient", f.name) for f in dataclasses.fields(PolicyGradientConfig)]
MMD_ONLY = [("mmd", f.name) for f in dataclasses.fields(MMDConfig)]
# the kernel's settings, read by gumbel too where adversarial.mmd_weight > 0
MMD_KERNEL = [("mmd", "bandwidths"), ("mmd", "estimator"), ("mmd", "bandwidth_unit")]
SCRATCHGAN_ONLY = [("scratchgan", f.name) for f in dataclasses.fields(ScratchGANConfig)]
LEAKGAN_ONLY = [("leakgan", f.name) for f in dataclasses.fields(LeakGANConfig)]


def _default(cls: type, name: str) -> Any:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _check_algorithm_options(cfg: "Config") -> None:
    """An option of another adversarial.algorithm than the chosen one is a one-line error."""
    algo = cfg.adversarial.algorithm
    gumbel_mmd = [f for f in MMD_ONLY if f not in MMD_KERNEL] if cfg.adversarial.mmd_weight > 0 else MMD_ONLY
    foreign = {"gumbel": POLICY_GRADIENT + gumbel_mmd, "seqgan": GUMBEL_ONLY + MMD_ONLY,
               "maligan": GUMBEL_ONLY + SEQGAN_ONLY + MMD_ONLY,
               "textgan_mmd": POLICY_GRADIENT + GUMBEL_TERMS,
               "scratchgan": GUMBEL_ONLY + POLICY_GRADIENT + MMD_ONLY,
               "leakgan": GUMBEL_ONLY + MMD_ONLY + [("policy_gradient", "rollout_update_rate")]}[algo]
    if algo != "scratchgan":
        foreign = foreign + SCRATCHGAN_ONLY
    if algo != "leakgan":
        foreign = foreign + LEAKGAN_ONLY
    for section, name in foreign:
        value = getattr(getattr(cfg, section), name)
        if value != _default(type(getattr(cfg, section)), name):
            owner = "textgan_mmd" if (section, name) in MMD_ONLY else "gumbel" if (section, name) in GUMBEL_ONLY else (
                "scratchgan" if section == "scratchgan" else "leakgan" if (section, name) in LEAKGAN_ONLY else
                "seqgan" if (section, name) in SEQGAN_ONLY else "seqgan and maligan")
            also = " (or adversarial.mmd_weight > 0)" if algo == "gumbel" and (section, name) in MMD_KERNEL else ""
            raise ConfigError(f"{section}.{name}: an option of adversarial.algorithm {owner}, not {algo}; "
                              f"remove it, or set adversarial.algorithm={owner.split()[0]}{also}")
    if algo == "gumbel":
        return
    _check(cfg.adversarial.loss == "standard", "adversarial.loss",
           f"{algo} trains its discriminator with binary cross-entropy: set adversarial.loss=standard "
           f"(not {cfg.adversarial.loss})")
    if algo == "textgan_mmd":
        _check_textgan_mmd(cfg)
        return
    _check(algo != "scratchgan" or cfg.discriminator.kind == "lstm", "discriminator.kind",
           f"scratchgan rewards every prefix with an LSTM discriminator's per-step logits: set "
           f"discriminator.kind=lstm (not {cfg.discriminator.kind})")
    _check(cfg.generator.feedback == "hard", "generator.feedback",
           f"{algo} samples discrete sentences: set generator.feedback=hard (not {cfg.generator.feedback})")
    _check(cfg.generator.noise == "gumbel", "generator.noise",
           f"{algo} needs sampled (not argmax) tokens: set generator.noise=gumbel")
    if algo == "leakgan":
        _check_leakgan(cfg)


def _check_leakgan(cfg: "Config") -> None:
    """LeakGAN's own generator: one-layer manager and worker LSTMs reading the CNN's features."""
    gen = cfg.generator
    for key, bad, fix in (
            ("discriminator.kind", cfg.discriminator.kind != "relgan_cnn", "its features leak from the CNN: set "
             "discriminator.kind=relgan_cnn"),
            ("generator.core", gen.core != "lstm", "its manager and worker are LSTMs: set generator.core=lstm"),
            ("generator.num_layers", gen.num_layers != 1, "its manager and worker have one layer each: set it to 1"),
            ("generator.tie_embeddings", gen.tie_embeddings, "its output is the worker's O_t w_t: set it to false"),
            ("generator.io_dropout", gen.io_dropout != 0, "is not supported by its generator: set it to 0"),
            ("generator.init_from", bool(gen.init_from), "its generator is trained by its own MLE phase (mle.epochs); "
             "remove init_from"),
            ("mle.objective", cfg.mle.objective != "nll", "elbo is not supported by its generator: set mle.objective=nll"),
            ("adversarial.g_ema", cfg.adversarial.g_ema != 0, "an average would also average its leaked "
             "discriminator copy: set it to 0")):
        _check(not bad, key, f"with adversarial.algorithm=leakgan: {fix}")


def _check_textgan_mmd(cfg: "Config") -> None:
    """textGAN's generator: z the only noise, the soft-argmax fed back and shown to D."""
    _check(cfg.generator.noise == "none", "generator.noise",
           "textgan_mmd's generator has z as its only noise (soft-argmax, no Gumbel noise): set generator.noise=none")
    _check(cfg.generator.feedback == "soft", "generator.feedback",
           f"textgan_mmd feeds back the soft-argmax softmax(logits / tau): set generator.feedback=soft "
           f"(not {cfg.generator.feedback})")
    _check(cfg.gumbel.mode == "soft", "gumbel.mode",
           "textgan_mmd shows D the soft-argmax: set gumbel.mode=soft (not straight_through)")
    _check(cfg.adversarial.batch_size >= 2, "adversarial.batch_size",
           "textgan_mmd's MMD^2 compares sentences within a batch: set it >= 2")


# which generator of a checkpoint `textgan sample/eval` load (textgan.sample.load_generator): kept
# here, not there, so the CLI offers it without importing torch
WEIGHTS = ("auto", "average", "trained")
SPLITS = ("test", "valid")  # held-out sentences `textgan eval --split` scores against (valid: data.valid_frac)


def choices(cls: type, key: str) -> tuple:
    """The allowed values of a field typed Literal[...], so a CLI offers exactly what a config accepts."""
    return typing.get_args(typing.get_type_hints(cls)[key])


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        return f"a list of {typing.get_args(tp)[0].__name__}"
    return tp.__name__


_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return `value` as type `tp`, or raise naming `key` and what was expected."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value is False and "off" in typing.get_args(tp):  # YAML 1.1 reads a bare off as false
            value = "off"
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin is list:
        if not isinstance(value, list):
            raise bad
        return [_coerce(v, typing.get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) and 1.0e4 (no sign) as strings
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        try:
            return float(value)
        except OverflowError:  # an int beyond the float range
            raise bad from None
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise bad


def _show(key: Any) -> str:
    """A key as printable text on one line: keys with newlines or control characters are repr'd."""
    return key if isinstance(key, str) and key.isprintable() else repr(key)


# PyYAML's constructors raise plain ValueError, KeyError, ... on some malformed tagged scalars
# (`!!float abc`, `!!bool maybe`, `!!timestamp 2020-13-45`); deep nesting overflows the stack.
_YAML_ERRORS = (yaml.YAMLError, ValueError, TypeError, LookupError, AttributeError, RecursionError)


# the kernel settings that run.accel replaced: refused in a user's config, dropped from a saved one
LEGACY_KEYS = {"generator": ("ce_kernel", "lstm_kernel"),
               "discriminator": ("conv_kernel", "highway_kernel", "compile")}


def _unknown(dotted: str, key: Any, valid: list[str]) -> ConfigError:
    if any(dotted == f"{section}.{name}" for section, names in LEGACY_KEYS.items() for name in names):
        return ConfigError(f"{dotted}: replaced by run.accel (auto, native, compile or off); "
                           f"remove {dotted} and set run.accel instead")
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(f"{dotted}: unknown key{hint}; valid keys: {', '.join(valid)}")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        dotted = f"{prefix}{_show(key)}"
        if key not in fields:
            raise _unknown(dotted, key, list(fields))
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{dotted}.")
        else:
            kwargs[key] = _coerce(value, tp, dotted)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{prefix}{err}") from None


def from_dict(raw: Any, saved: bool = False) -> Config:
    """Build a checked Config from plain data (as YAML gives it). `saved`: a run folder's or a
    checkpoint's config, whose kernel settings from before run.accel are dropped with a note."""
    if saved and isinstance(raw, dict):
        raw = _drop_legacy(raw)
    return _build(Config, raw, "")


def _drop_legacy(raw: dict) -> dict:
    """A copy of a saved config without the kernel settings run.accel replaced; a run that
    compiled its discriminator keeps doing so (run.accel=compile)."""
    raw = {key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()}
    dropped = [f"{section}.{name}" for section, names in LEGACY_KEYS.items()
               if isinstance(raw.get(section), dict) for name in names if name in raw[section]]
    if not dropped:
        return raw
    compiled = bool(raw["discriminator"].get("compile")) if isinstance(raw.get("discriminator"), dict) else False
    for key in dropped:
        section, name = key.split(".")
        del raw[section][name]
    run = raw.get("run") or {}
    if compiled and isinstance(run, dict) and "accel" not in run:
        raw["run"] = {**run, "accel": "compile"}
    print(f"note: saved config's {', '.join(dropped)} dropped (replaced by run.accel)", file=sys.stderr)
    return raw


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = raw
    cls: Any = Config
    for i, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(cls)]
        where = ".".join(_show(p) for p in parts[: i + 1])
        if part not in names:
            raise _unknown(where, part, names)
        tp = typing.get_type_hints(cls)[part]
        last = i == len(parts) - 1
        if dataclasses.is_dataclass(tp):
            if last:
                raise ConfigError(f"{where}: is a section; set one of its keys, e.g. {where}.<key>=...")
            if node.get(part) is None:  # `section:` with every key commented out reads as None
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"{where}: expected a mapping of keys")
            cls = tp
        elif not last:
            raise ConfigError(f"{where}: is a value, not a section")
        else:
            node[part] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Split `a.b=value`; the value is read as one YAML scalar or flow list."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. adversarial.steps=200")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except _YAML_ERRORS:
        raise ConfigError(f"{_show(key.strip())}: cannot read value {value!r}; quote strings, lists as [1, 2]") from None
    return key.strip(), parsed


def load(path: str | Path | None, overrides: list[str] = (), saved: bool = False) -> Config:
    """Read a YAML config (or the defaults when `path` is None) and apply dotted overrides.
    `saved`: a run folder's config.yaml (see `from_dict`)."""
    raw: Any = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found; see configs/ for examples") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} cannot be read ({err.__class__.__name__}); "
                              "pass a UTF-8 YAML file") from None
        try:
            raw = yaml.safe_load(text)
        except _YAML_ERRORS as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"config file {path}: invalid YAML{where}; fix the syntax") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path}: expected a mapping of sections at the top level")
        if saved:
            raw = _drop_legacy(raw)
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(raw, key, value)
    return _build(Config, raw, "")


def dump(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
