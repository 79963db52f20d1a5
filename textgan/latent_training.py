"""The trainer's latent parts: the variational encoder q(z | x) of mle.objective: elbo and the
reconstruction head of adversarial.info_weight, their optimizers, checkpoint entries and logs.

The Trainer holds one `LatentParts` and calls it at a few hooks (MLE loss, G step, evaluation,
state), so a run with neither switch on trains, saves and resumes exactly as before.
"""
from __future__ import annotations

import torch

from textgan import checkpoint, latent
from textgan.config import Config
from textgan.corpus import Corpus
from textgan.errors import UserError
from textgan.models.encoder import SentenceEncoder
from textgan.models.generator import Generator

ENCODER, HEAD = checkpoint.LATENT_PARTS  # their checkpoint entries (absent in runs without them)


def build_encoder(cfg: Config, vocab_size: int) -> SentenceEncoder | None:
    """q(z | x), for mle.objective: elbo."""
    lat = cfg.latent
    if cfg.mle.objective != "elbo":
        return None
    return SentenceEncoder(vocab_size, lat.encoder_emb_dim, lat.encoder_hidden_dim, cfg.generator.latent_dim,
                           bidirectional=lat.encoder_bidirectional)


def build_head(cfg: Config, vocab_size: int) -> SentenceEncoder | None:
    """The reconstruction head, for adversarial.info_weight > 0."""
    lat = cfg.latent
    if cfg.adversarial.info_weight <= 0:
        return None
    return SentenceEncoder(vocab_size, lat.info_emb_dim, lat.info_hidden_dim, cfg.generator.latent_dim)


def check_distributed(cfg: Config, distributed: bool) -> None:
    """The latent networks train in one process only (their updates are not synced over ranks):
    refused under torchrun before anything is written."""
    if distributed and (cfg.mle.objective == "elbo" or cfg.adversarial.info_weight > 0):
        raise UserError("mle.objective=elbo and adversarial.info_weight > 0 train in one process only; "
                        "train without torchrun, or set mle.objective=nll and adversarial.info_weight=0")


class Joint:
    """Several optimizers stepped as one (the trainer's `_finite_step` takes one)."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()


class LatentParts:
    def __init__(self, cfg: Config, vocab_size: int, device: torch.device, distributed: bool = False):
        self.cfg = cfg
        self.encoder = build_encoder(cfg, vocab_size)
        self.head = build_head(cfg, vocab_size)
        check_distributed(cfg, distributed)
        adv = cfg.adversarial
        self.opt_encoder = self.opt_head = None
        if self.encoder is not None:
            self.encoder.to(device)
            self.opt_encoder = torch.optim.Adam(self.encoder.parameters(), lr=cfg.mle.lr)
        if self.head is not None:
            self.head.to(device)
            self.opt_head = torch.optim.Adam(self.head.parameters(), lr=cfg.latent.info_lr, betas=(adv.beta1, adv.beta2))
        self.stats: dict[str, float] = {}  # the last update's figures, taken by `pop_stats`

    # ---- state -------------------------------------------------------------------------------
    def _parts(self):
        return [(name, module, opt) for name, module, opt in ((ENCODER, self.encoder, self.opt_encoder),
                                                              (HEAD, self.head, self.opt_head)) if module is not None]

    def state_dict(self) -> dict[str, checkpoint.LatentPart]:
        """For `checkpoint.write_training`'s latent_parts."""
        return {name: checkpoint.LatentPart(module.state_dict(), opt.state_dict())
                for name, module, opt in self._parts()}

    def load_state_dict(self, state: dict) -> None:
        """Weights and optimizers where the checkpoint has them; a checkpoint from before they
        were switched on leaves them freshly initialised."""
        for name, module, opt in self._parts():
            part = checkpoint.read_latent_part(state, name)
            if part is not None:
                module.load_state_dict(part.weights)
                opt.load_state_dict(part.optimizer)

    def load_encoder(self, state: dict) -> None:
        """The encoder saved with a generator put back (mle.patience's best epoch)."""
        part = checkpoint.read_latent_part(state, ENCODER)
        if self.encoder is not None and part is not None:
            self.encoder.load_state_dict(part.weights)

    def set_lr(self, scale: float, mle_scale: float) -> None:
        """As the trainer's own: the encoder follows mle.lr, the head latent.info_lr."""
        for opt, base in ((self.opt_encoder, self.cfg.mle.lr * mle_scale), (self.opt_head, self.cfg.latent.info_lr)):
            for group in (opt.param_groups if opt is not None else []):
                group["lr"] = base * scale

    # ---- hooks -------------------------------------------------------------------------------
    def mle_update(self, optimizer: torch.optim.Optimizer, params) -> tuple[object, list]:
        """The optimizer and parameters of an MLE update: the generator's, and the encoder's."""
        if self.encoder is None:
            return optimizer, list(params)
        return Joint(optimizer, self.opt_encoder), [*params, *self.encoder.parameters()]

    def g_update(self, optimizer: torch.optim.Optimizer, params) -> tuple[object, list]:
        """The same for a generator update: the generator's, and the reconstruction head's."""
        if self.head is None:
            return optimizer, list(params)
        return Joint(optimizer, self.opt_head), [*params, *self.head.parameters()]

    def elbo_loss(self, G: Generator, tokens: torch.Tensor, lengths: torch.Tensor, *, step: int,
                  pad_id: int, unk_id: int, rng: torch.Generator) -> torch.Tensor:
        lat = self.cfg.latent
        self.encoder.train()
        terms = latent.elbo(G, self.encoder, tokens, lengths, pad_id=pad_id, unk_id=unk_id,
                            weight=latent.kl_weight(step, lat.kl_anneal_steps), free_bits=lat.free_bits,
                            word_dropout=lat.word_dropout, rng=rng)
        self.stats.update({"mle/kl": terms.kl, "mle/kl_weight": terms.weight, "mle/nll_tok": terms.nll_tok})
        return terms.loss

    def info_term(self, dists: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """adversarial.info_weight times the reconstruction loss of a fake batch."""
        self.head.train()
        loss, r2 = latent.info_loss(self.head, dists, lengths, z)
        self.stats.update({"adv/info_loss": loss.item(), "adv/info_r2": r2})
        return self.cfg.adversarial.info_weight * loss

    def pop_stats(self) -> dict[str, float]:
        stats, self.stats = self.stats, {}
        return stats

    def evaluate(self, G: Generator, corpus: Corpus, seed: int) -> dict[str, float]:
        """Held-out figures of the latent parts (none without them)."""
        device = G.out.weight.device
        out: dict[str, float] = {}
        if self.encoder is not None:
            rng = torch.Generator(device=device).manual_seed(seed + 21)
            out.update(latent.posterior_stats(G, self.encoder, corpus.test.tokens, corpus.test.lengths,
                                              draws=self.cfg.eval.latent_draws, rng=rng))
        if self.head is not None:
            rng = torch.Generator(device=device).manual_seed(seed + 22)
            out["latent_info_r2"] = latent.recovery_r2(G, self.head, self.cfg.eval.num_samples, corpus.max_len, rng)
        return out
