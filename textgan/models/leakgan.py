"""LeakGAN's hierarchical generator (Guo et al. 2018, "Long Text Generation via Adversarial
Training with Leaked Information"): the discriminator's sentence features of the prefix written
so far are "leaked" to a MANAGER LSTM, whose unit goal vectors, summed over the last c steps and
projected by W_psi (no bias), weight the columns of a WORKER LSTM's output matrix O_t:

    g_t = normalise(goal(M(F[t]))),   w_t = W_psi sum_{j=t-c+1..t} g_j,   logits_t = O_t w_t

(F[s] the features of the first s tokens; the window holds the current goal and the c - 1
before it, zero before the start). `leak` is a frozen, always-eval copy of the run's CNN
discriminator, kept equal to it by the LeakGAN algorithm, so the generator's checkpoint holds the
features it was trained with and `textgan sample` / `eval` need nothing else. z sets the initial
states of manager and worker, as the toolkit's generator's h0/c0.

Shapes: B batch, T time, V vocabulary, E embedding, H worker hidden, M manager hidden,
F leaked features, K goal_dim (w_t's size), Z latent, C goal_steps (c), N rollouts, R rollout rows
(prefixes x rollouts), W rollout rows of one prefix (B N).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from textgan import draws, philox
from textgan.gumbel import gumbel_noise, gumbel_softmax
from textgan.models.discriminator import RelGANCNN
from textgan.models.generator import IGNORE, NEG, Generator, GeneratorOps, SampleOutput, sequence_log_probs
from textgan.models.leaked_cnn import LeakedCNN

FEATURE_ROWS = 4096  # prefixes the leaked CNN scores at a time (bounds its activations)


@dataclass
class Cursor:
    """Free-running sampling's state after some steps (`LeakGANGenerator.start`, `step`, `advance`)."""
    hw: torch.Tensor  # (B, H) worker state
    cw: torch.Tensor  # (B, H)
    hm: torch.Tensor  # (B, M) manager state
    cm: torch.Tensor  # (B, M)
    window: torch.Tensor  # (B, C - 1, F) the last c - 1 goals, zeros before the start
    written: torch.Tensor  # (B, >= max_len) the tokens so far, pad after an EOS and beyond
    ended: torch.Tensor  # (B,) bool: an EOS was written
    inp: torch.Tensor  # (B,) the last token (BOS at the start), the worker's next input
    leaked: torch.Tensor  # (B, S) the leaked CNN's state of the prefix written (textgan.models.leaked_cnn)

    def take(self, rows: torch.Tensor | slice) -> "Cursor":
        """The cursor of rows `rows` (indices (R,) or a slice)."""
        return Cursor(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def join(self, other: "Cursor") -> "Cursor":
        """This cursor's rows, then other's."""
        return Cursor(**{f.name: torch.cat([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)})


@dataclass
class Completions:
    """Rollouts of every prefix of a batch (`LeakGANGenerator.complete`), rows by prefix length,
    then sentence, then rollout."""
    tokens: torch.Tensor  # (R, T) a sentence's first `prefix` tokens, then a completion's, pad after an EOS
    prefix: torch.Tensor  # (R,) the prefix's length k, 1 .. the sentence's length - 1
    sample: torch.Tensor  # (R,) the sentence (batch row) each row completes


@dataclass
class LeakedRun:
    """A teacher-forced pass over tokens (B, T)."""
    logits: torch.Tensor  # (B, T, V) O_t w_t plus the banned tokens' -1e9
    goals: torch.Tensor  # (B, T, F) g_t, unit vectors
    features: torch.Tensor  # (B, T + 1, F) F[s]: the leaked features of the first s tokens, constants


def goal_windows(goals: torch.Tensor, steps: int) -> torch.Tensor:
    """sum_{j=t-c+1..t} g_j (B, T, F) of goals (B, T, F), c = `steps`; goals before t = 0 count 0."""
    t = goals.shape[1]
    return sum(F.pad(goals, (0, 0, i, 0))[:, :t] for i in range(steps))


def worker_logits(hidden: torch.Tensor, w: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                  goal_dim: int) -> torch.Tensor:
    """O_t w_t (..., V) with O_t = (weight hidden + bias) viewed (V, K), hidden (..., H), w (..., K),
    weight (V * K, H), bias (V * K,); computed as one product with the outer w x hidden (..., K * H),
    so no (..., V, K) tensor is made."""
    v, h = weight.shape[0] // goal_dim, hidden.shape[-1]
    outer = (w.unsqueeze(-1) * hidden.unsqueeze(-2)).flatten(-2)  # (..., K * H)
    w_by_kh = weight.view(v, goal_dim, h).reshape(v, goal_dim * h)  # (V, K * H)
    return F.linear(outer, w_by_kh) + w @ bias.view(v, goal_dim).t()  # (..., V)


class LeakGANGenerator(nn.Module):
    """Manager and worker LSTMs reading a frozen copy of the discriminator's features."""

    # the toolkit generator's latent draws and end-of-sentence cut, which read only the attributes
    # set in __init__ (prior, latent_dim, num_classes, out, eos/pad ids, vocab_size)
    sample_latent = Generator.sample_latent
    prior_mean = Generator.prior_mean
    _finish = Generator._finish

    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, manager_dim: int, latent_dim: int,
                 prior: str, leak: nn.Module, max_len: int, goal_steps: int = 4, goal_dim: int = 16,
                 banned: list[int] = (), pad_id: int = 0, bos_id: int = 1, eos_id: int = 2):
        super().__init__()
        self.ops = GeneratorOps()  # only its noise (uniform, step_noise) is read: no kernels here
        self.vocab_size, self.latent_dim, self.prior = vocab_size, latent_dim, prior
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.num_classes, self.noise, self.feedback, self.core_kind = 0, "gumbel", "hard", "leakgan"
        self.hidden_dim, self.manager_dim, self.goal_steps, self.goal_dim = hidden_dim, manager_dim, goal_steps, goal_dim
        self.max_len = max_len  # the width D scores a sentence at: every prefix is padded to it
        self.leak = leak.eval().requires_grad_(False)  # a discriminator of the run's kind, its own copy
        feature_dim = self.leak.features_tokens(torch.zeros(1, max_len, dtype=torch.long)).shape[1]
        self.feature_dim = feature_dim
        self.leaked = LeakedCNN(self.leak) if isinstance(self.leak, RelGANCNN) else None  # free-running features
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.worker = nn.LSTMCell(emb_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, vocab_size * goal_dim)  # O_t, (V, K) per step
        self.manager = nn.LSTMCell(feature_dim, manager_dim)
        self.goal = nn.Linear(manager_dim, feature_dim)  # g_t before normalising
        self.psi = nn.Linear(feature_dim, goal_dim, bias=False)  # W_psi
        self.latent_proj = nn.Linear(latent_dim, 2 * (hidden_dim + manager_dim)) if prior != "none" else None
        mask = torch.zeros(vocab_size)
        mask[list(banned)] = NEG
        self.register_buffer("logit_mask", mask, persistent=False)

    def train(self, mode: bool = True) -> "LeakGANGenerator":
        super().train(mode)
        self.leak.eval()  # the leaked features never see dropout
        return self

    @torch.no_grad()
    def init_normal_(self, std: float) -> None:
        """generator.init_std: every weight and bias but the leaked copy's ~ N(0, std)."""
        for name, param in self.named_parameters():
            if not name.startswith("leak."):
                param.normal_(0.0, std)

    @torch.no_grad()
    def copy_features_from(self, discriminator: nn.Module) -> None:
        """The leaked copy takes the discriminator's current weights."""
        self.leak.load_state_dict(discriminator.state_dict())

    def init_state(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(worker h, worker c, manager h, manager c): (B, H) twice, (B, M) twice, from z (zeros without a prior)."""
        b, size = z.shape[0], 2 * (self.hidden_dim + self.manager_dim)
        flat = self.latent_proj(z) if self.latent_proj is not None else z.new_zeros(b, size)  # (B, 2H + 2M)
        return tuple(flat.split([self.hidden_dim, self.hidden_dim, self.manager_dim, self.manager_dim], dim=1))

    @torch.no_grad()
    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """D's features (N, F) of sentences (N, T), padded to max_len as D scores them."""
        if tokens.shape[1] < self.max_len:
            tokens = F.pad(tokens, (0, self.max_len - tokens.shape[1]), value=self.pad_id)
        return torch.cat([self.leak.features_tokens(tokens[s:s + FEATURE_ROWS])
                          for s in range(0, tokens.shape[0], FEATURE_ROWS)])

    @torch.no_grad()
    def prefix_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """F[s] (B, T + 1, F): the features of the first s = 0..T tokens of each sentence (B, T),
        each padded to max_len as D scores it: a token at a time through the incremental `LeakedCNN`
        (one convolution's products in all, where recomputing convolved T + 1 padded prefixes: the
        teacher-forced pass of the MLE phase was most of its time), else recomputed."""
        b, t = tokens.shape
        if self.leaked is not None:
            width = self.leaked.width(max(t, self.max_len))
            state = self.leaked.start(b, tokens.device)
            feats = [self.leaked.features(state, 0, width)]
            for s in range(t):
                state = self.leaked.push(state, tokens[:, s], s, width)
                feats.append(self.leaked.features(state, s + 1, width))
            return torch.stack(feats, 1)
        keep = torch.arange(t, device=tokens.device) < torch.arange(t + 1, device=tokens.device).unsqueeze(1)  # (T+1, T)
        prefixes = tokens.unsqueeze(1).masked_fill(~keep, self.pad_id)  # (B, T + 1, T)
        return self.features(prefixes.reshape(b * (t + 1), t)).view(b, t + 1, -1)

    def run(self, tokens: torch.Tensor, z: torch.Tensor, detach_goals: bool = False) -> LeakedRun:
        """Teacher-forced pass: logits of each token given the ones before it. `detach_goals`: w_t
        from goals cut from the graph, so a loss on the logits trains the worker (and W_psi) only,
        as LeakGAN's worker update (the manager has its own)."""
        b, t = tokens.shape
        features = self.prefix_features(tokens)  # (B, T + 1, F)
        hw, cw, hm, cm = self.init_state(z)
        inputs = torch.cat([torch.full_like(tokens[:, :1], self.bos_id), tokens[:, :-1]], 1)  # (B, T)
        emb = self.embedding(inputs)  # (B, T, E)
        goals, hidden = [], []
        for s in range(t):
            hm, cm = self.manager(features[:, s], (hm, cm))
            goals.append(F.normalize(self.goal(hm), dim=-1))  # (B, F)
            hw, cw = self.worker(emb[:, s], (hw, cw))
            hidden.append(hw)
        goals_t = torch.stack(goals, 1)  # (B, T, F)
        w = self.psi(goal_windows(goals_t.detach() if detach_goals else goals_t, self.goal_steps))  # (B, T, K)
        logits = worker_logits(torch.stack(hidden, 1), w, self.out.weight, self.out.bias, self.goal_dim)
        return LeakedRun(logits=logits + self.logit_mask, goals=goals_t, features=features)

    def forward(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V)."""
        return self.run(tokens, z).logits

    def mle_loss(self, tokens: torch.Tensor, z: torch.Tensor, pad_id: int,
                 inputs: torch.Tensor | None = None) -> torch.Tensor:
        """Mean teacher-forced NLL over non-pad tokens (manager and worker trained together
        through w_t). Word dropout (`inputs`) needs mle.objective elbo, which LeakGAN refuses."""
        if inputs is not None:
            raise ValueError("the LeakGAN generator feeds its own tokens; it takes no other inputs")
        targets = tokens.masked_fill(tokens == pad_id, IGNORE)  # (B, T)
        return -sequence_log_probs(self.run(tokens, z).logits, targets).sum() / (targets != IGNORE).sum()

    @torch.no_grad()
    def token_log_probs(self, tokens: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor,
                        temperature: float = 1.0) -> torch.Tensor:
        """Teacher-forced log p of each gold token (B, t), t the longest length; 0 past each length.
        `temperature` divides the logits, as `sample` does."""
        t = max(int(lengths.max()), 1) if lengths.numel() else tokens.shape[1]
        tokens = tokens[:, :t]
        logits = self.run(tokens, z).logits  # (B, t, V)
        if temperature != 1.0:
            logits = (logits - self.logit_mask) / temperature + self.logit_mask
        logp = torch.log_softmax(logits, -1).gather(2, tokens.unsqueeze(2)).squeeze(2)  # (B, t)
        alive = torch.arange(t, device=tokens.device) < lengths.unsqueeze(1)
        return logp * alive

    def start(self, z: torch.Tensor, max_len: int) -> Cursor:
        """Free-running sampling's state before its first token, from z (B, Z)."""
        b, device = z.shape[0], z.device
        hw, cw, hm, cm = self.init_state(z)
        return Cursor(hw=hw, cw=cw, hm=hm, cm=cm,
                      window=z.new_zeros(b, self.goal_steps - 1, self.feature_dim),
                      written=torch.full((b, max(max_len, self.max_len)), self.pad_id, dtype=torch.long, device=device),
                      ended=torch.zeros(b, dtype=torch.bool, device=device),
                      inp=torch.full((b,), self.bos_id, dtype=torch.long, device=device),
                      leaked=self.leaked.start(b, device) if self.leaked is not None else z.new_zeros(b, 0))

    @torch.no_grad()
    def prefix_leak(self, cur: Cursor, t: int) -> torch.Tensor:
        """D's features (B, F) of the cursor's first t tokens, as `features(cur.written)` gives
        them: from the incremental state (`LeakedCNN`), else recomputed."""
        if self.leaked is None:
            return self.features(cur.written)
        return self.leaked.features(cur.leaked, t, self.leaked.width(cur.written.shape[1]))

    def step(self, cur: Cursor, t: int) -> torch.Tensor:
        """Step t's logits (B, V) (banned tokens at -1e9) from the cursor, whose manager, worker and
        goal window it advances; `advance` then writes the chosen token."""
        cur.hm, cur.cm = self.manager(self.prefix_leak(cur, t), (cur.hm, cur.cm))
        goal = F.normalize(self.goal(cur.hm), dim=-1)  # (B, F)
        w = self.psi(goal + cur.window.sum(1))  # (B, K)
        if self.goal_steps > 1:
            cur.window = torch.cat([cur.window[:, 1:], goal.unsqueeze(1)], 1)  # (B, C - 1, F)
        cur.hw, cur.cw = self.worker(self.embedding(cur.inp), (cur.hw, cur.cw))
        return worker_logits(cur.hw, w, self.out.weight, self.out.bias, self.goal_dim) + self.logit_mask

    def advance(self, cur: Cursor, t: int, ids: torch.Tensor) -> None:
        """Token t (B,) is chosen: the next input, and the prefix D scores (pad once past an EOS)."""
        cur.written[:, t] = ids.masked_fill(cur.ended, self.pad_id)
        cur.ended = cur.ended | (ids == self.eos_id)
        cur.inp = ids
        if self.leaked is not None:
            with torch.no_grad():
                cur.leaked = self.leaked.push(cur.leaked, cur.written[:, t], t, self.leaked.width(cur.written.shape[1]))

    def sample(self, z: torch.Tensor, max_len: int, tau: float = 1.0, straight_through: bool = False,
               temperature: float = 1.0, generator: torch.Generator | None = None,
               need_dists: bool = True, noise: torch.Tensor | None = None,
               noise_keys: torch.Tensor | None = None) -> SampleOutput:
        """Free-running Gumbel-max sampling, the leaked features of the prefix updated at every
        step; the toolkit generator's arguments (`noise` (T, B, V) or per-sample `noise_keys`)."""
        b, device = z.shape[0], z.device
        if noise is None and noise_keys is None:
            noise = gumbel_noise((max_len, b, self.vocab_size), generator, device, uniform=self.ops.uniform)
        cur, ids_steps, dist_steps = self.start(z, max_len), [], []
        for t in range(max_len):
            logits = self.step(cur, t)  # (B, V)
            if temperature != 1.0:
                logits = (logits - self.logit_mask) / temperature + self.logit_mask
            step_noise = (self.ops.step_noise(noise_keys, t, self.vocab_size).to(device)
                          if noise is None else noise[t])  # (B, V)
            if need_dists:
                ids, dist = gumbel_softmax(logits, tau, step_noise, straight_through=straight_through)
                dist_steps.append(dist)
            else:
                ids = (logits + step_noise).argmax(dim=-1)
            ids_steps.append(ids)
            self.advance(cur, t, ids)
        return self._finish(torch.stack(ids_steps, 1), torch.stack(dist_steps, 1) if need_dists else None)

    @torch.no_grad()
    def complete(self, z: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor, num: int,
                 generator: torch.Generator | None, keyed: bool | None = None) -> Completions:
        """`num` completions of each prefix of tokens (B, T) that stops before its sentence's end
        (k < lengths[b]), sampled under the sentence's z (B, Z) from the state after the prefix (no
        step replayed). All prefixes in one pass: at step s the B prefix rows read their token s, the
        completions of prefix s join them as copies of their rows, every completion draws its token
        s; one manager, worker and leaked-feature call a step. `keyed`: as `RolloutNoise`."""
        b, t = tokens.shape
        device = tokens.device
        longest = int(lengths.max()) if b else 0
        k_minus_1, row = torch.nonzero(torch.arange(1, max(longest, 1), device=device).unsqueeze(1) < lengths,
                                       as_tuple=True)  # (P,) ascending k, then the sentence
        prefix, sample = (k_minus_1 + 1).repeat_interleave(num), row.repeat_interleave(num)  # (R,)
        if longest < 2:
            return Completions(tokens=tokens.new_zeros(0, t), prefix=prefix, sample=sample)
        ends = torch.bincount(prefix, minlength=longest).cumsum(0).tolist()  # ends[k]: rows of prefixes <= k
        source = (prefix - 1) * b * num + sample * num + torch.arange(num, device=device).repeat(len(row))  # (R,)
        noise = RolloutNoise(self, generator, longest, t, b * num, device, keyed)
        cur, held = self.start(z, t), b  # the prefix rows first, then the completions joined so far
        for s in range(t):
            if 1 <= s < longest:  # prefix s is read: its completions continue copies of its rows
                cur = cur.join(cur.take(sample[ends[s - 1]:ends[s]]))
            if s == longest - 1:  # no prefix is longer: the prefix rows leave
                cur, held = cur.take(slice(b, None)), 0
            logits = self.step(cur, s)  # (held + m, V)
            drawn = noise.draw(s, source[:logits.shape[0] - held], logits[held:])  # (m,)
            self.advance(cur, s, torch.cat([tokens[:, s], drawn]) if held else drawn)
        return Completions(tokens=self._finish(cur.written[:, :t], None).tokens, prefix=prefix, sample=sample)


class RolloutNoise:
    """The Gumbel noise of `LeakGANGenerator.complete` as a loop over prefixes draws it: a (W, V)
    draw for each prefix k = 1 .. longest - 1 and step s = k .. T - 1 (k outer), row b N + n of
    draw (k, s) completion n of sentence b (W = B N). Philox noise (CPU; `keyed` None) is keyed:
    the draws' keys are taken from the generator in the loop's order up front and each row reads
    its own part of its draw's stream, so one pass over all prefixes meets the loop's numbers and
    leaves the generator where the loop did. Otherwise (`keyed` False) each step draws its rows'
    noise at once from the generator: the same distribution, other numbers."""

    def __init__(self, gen: LeakGANGenerator, generator: torch.Generator | None, longest: int, t: int, width: int,
                 device: torch.device, keyed: bool | None = None):
        self.generator, self.width, self.vocab, self.device = generator, width, gen.vocab_size, device
        self.keyed = philox.applies(device, torch.float32) if keyed is None else keyed
        self.uniform = gen.ops.uniform
        self.keys = [[philox.new_key(generator) for _ in range(k, t)] for k in range(1, longest)] if self.keyed else []
        self.argmax_at = gen.ops.gumbel_argmax_at

    def draw(self, s: int, source: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Step s's tokens (m,): argmax of logits (m, V) plus the noise of the completions whose draw
        rows are `source` (m,): (k - 1) W + b N + n. Keyed: each row's key and stream position go
        to `ops.gumbel_argmax_at` (accel's fused kernel makes no noise)."""
        if not len(source):  # no completion has started (step 0)
            return torch.zeros(0, dtype=torch.long, device=self.device)
        if not self.keyed:
            return (logits + gumbel_noise(tuple(logits.shape), self.generator, self.device,
                                          uniform=self.uniform)).argmax(dim=-1)
        started = min(s, len(self.keys))  # prefixes 1 .. started are being completed
        keys = draws.key_tensor([self.keys[k - 1][s - k] for k in range(1, started + 1)])  # (started,)
        source = source.cpu()
        return self.argmax_at(logits, keys[source // self.width], (source % self.width) * self.vocab).to(self.device)
