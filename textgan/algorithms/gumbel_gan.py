"""RelGAN's objective (Nie et al. 2019): the generator's free-running samples are relaxed one-hot
distributions (Gumbel-softmax at temperature tau, Jang et al. 2017), which the discriminator
scores against one-hot real sentences, so the generator's loss back-propagates through its
samples into every weight. In a conditional run the fakes' classes come with their codes (drawn
from the class prior) and D is a projection discriminator scoring each sentence with its class, or
(discriminator.conditioning auxiliary) an unconditional D with a classifier head that learns the
real sentences' classes, G's loss adding the head's cross-entropy of each fake against the class it
was drawn for (adversarial.class_weight). Conditioned on source sentences, D projects each sentence's
source reading (the fakes': their code's, detached; the reals': their sources' read afresh).
The D and G losses are `adversarial.loss` (textgan/losses.py); wgan_gp adds the gradient
penalty; `adversarial.mle_weight` adds a real batch's NLL to G's; `adversarial.mmd_weight` adds
textGAN's batch-level feature matching (Zhang et al. 2017: the MMD^2 between D's sentence features
of the fake and the real batch, mmd.*), which a per-sentence D score lacks: the fakes as a whole
must spread like the real sentences.

Shapes: B batch, T time, V vocabulary.
"""
from __future__ import annotations

import torch

from textgan.algorithms.base import Players, frozen
from textgan.algorithms.textgan_mmd import discriminator_mmd2
from textgan.config import AdversarialConfig, GumbelConfig, MMDConfig
from textgan.losses import LOSSES
from textgan.mle import teacher_forced_nll


class GumbelGAN:
    relaxed = True  # samples are relaxed one-hots at temperature tau

    def __init__(self, players: Players, adv: AdversarialConfig, gumbel: GumbelConfig, mmd: MMDConfig):
        self.p, self.adv, self.mmd = players, adv, mmd
        self.straight_through = gumbel.mode == "straight_through"
        self.loss_d, self.loss_g = LOSSES[adv.loss]

    def fake(self, batch_size: int, tau: float, z: torch.Tensor | None = None):
        """Free-running samples from `z` (B, Z), by default fresh (a SampleOutput; `.dists` is (B, T, V))."""
        p = self.p
        z = p.g.module.sample_latent(batch_size, p.noise) if z is None else z
        return p.g.sample(z, p.batches.max_len, tau=tau, generator=p.noise, straight_through=self.straight_through)

    def state_dict(self) -> dict[str, dict]:
        return {}  # nothing beyond the trainer's generator, discriminator and optimizers

    def load_state_dict(self, state: dict) -> None:
        pass

    def d_step(self, tau: float) -> dict[str, float]:
        """Update D on real sentences and detached fakes."""
        p, adv = self.p, self.adv
        real, real_labels = p.batches.real_labelled(p.batch_size)
        with torch.no_grad():  # the D step never back-propagates into the generator
            z = p.g.module.sample_latent(p.batch_size, p.noise)
            fake = self.fake(p.batch_size, tau, z).dists
        g = p.g.module
        labels = None if real_labels is None else (g.conditions_of_classes(real_labels), g.conditions_of(z))
        scores = p.d.score(real, fake, penalty_rng=p.noise if adv.loss == "wgan_gp" else None, labels=labels)
        loss = self.loss_d(scores.real, scores.fake)
        if scores.penalty is not None:
            loss = loss + adv.gp_weight * scores.penalty
        total = loss if scores.class_nll is None else loss + adv.class_weight * scores.class_nll.mean()
        norm = p.updates.step(p.opt_d, p.d.module.parameters(), total, adv.grad_clip, "d")
        out = {"adv/d_loss": loss.item(), "adv/d_real": scores.real.mean().item(),
               "adv/d_fake": scores.fake.mean().item()}
        if scores.class_nll is not None:
            out["adv/d_class_nll"] = scores.class_nll.mean().item()
        if norm is not None:
            out["adv/d_grad_norm"] = norm
        return out

    def g_step(self, tau: float) -> dict[str, float]:
        """Update G to make D score its samples as real, D frozen."""
        p, adv = self.p, self.adv
        real, real_labels = p.batches.real_labelled(p.batch_size)
        z = p.g.module.sample_latent(p.batch_size, p.noise)
        fake = self.fake(p.batch_size, tau, z)
        head = p.latent if p.latent is not None and p.latent.head is not None else None
        class_nll = None
        with frozen(p.d.module) as d:
            if real_labels is None:
                loss = self.loss_g(d(real), d(fake.dists))
            else:
                given = d.scores(fake.dists, p.g.module.conditions_of(z))
                real_logits = d(real, labels=p.g.module.conditions_of_classes(real_labels))
                loss, class_nll = self.loss_g(real_logits, given.logits), given.class_nll
            nll = self._real_batch_term() if self._mle_term_on() else None
            total = loss if nll is None else loss + adv.mle_weight * nll
            if class_nll is not None:  # an auxiliary classifier: fakes read as the class they were drawn for
                total = total + adv.class_weight * class_nll.mean()
            matched = discriminator_mmd2(d, fake.dists, real, self.mmd) if adv.mmd_weight > 0 else None
            if matched is not None:  # adversarial.mmd_weight: the fake batch's features match the real one's
                total = total + adv.mmd_weight * matched
            optimizer, params = p.opt_g, list(p.g.module.parameters())
            if nll is not None and p.latent is not None:  # an ELBO term trains the encoder too
                optimizer, params = p.latent.mle_update(optimizer, params)
            if head is not None:  # adversarial.info_weight: G and the head recover z from the fakes
                total = total + head.info_term(fake.dists, fake.lengths, z)
                optimizer, params = head.g_update(optimizer, params)
            norm = p.updates.step(optimizer, params, total, adv.grad_clip, "g")
        out = {"adv/g_loss": loss.item(), "adv/fake_tokens": float(fake.lengths.sum()),
               **(p.latent.pop_stats() if p.latent is not None else {})}
        if nll is not None:
            out["adv/g_mle_loss"] = nll.item()
        if matched is not None:
            out["adv/g_mmd2"] = matched.item()
        if class_nll is not None:
            out["adv/g_class_nll"] = class_nll.mean().item()
        if norm is not None:
            out["adv/g_grad_norm"] = norm
        return out

    def _mle_term_on(self) -> bool:
        """Whether this step's G updates add adversarial.mle_weight times a real batch's NLL."""
        adv = self.adv
        return adv.mle_weight > 0 and (adv.mle_weight_steps == 0 or self.p.progress.step < adv.mle_weight_steps)

    def _real_batch_term(self) -> torch.Tensor:
        """The MLE term on a fresh draw of real sentences, weighted as in MLE; through the plain
        module, as the G step's synced forward is its sampling. With a variational encoder
        (mle.objective elbo) it is the negative ELBO, z from q(z | x): the NLL under prior draws of z
        would teach the generator to ignore z."""
        p = self.p
        batch = p.batches.shard(p.batches.draw(p.batch_size))
        if p.latent is not None and p.latent.encoder is not None:
            loss = p.latent.elbo_loss(p.g.module, batch.tokens, batch.lengths, step=p.progress.global_step,
                                      pad_id=p.batches.pad_id, unk_id=p.batches.unk_id, rng=p.noise)
        else:
            loss = teacher_forced_nll(p.g, batch, p.noise, p.batches.pad_id, synced=False)
        return batch.weighted(loss)
