"""Latent-initialised recurrent generator: teacher-forced logits and free-running Gumbel sampling.

Shapes: B batch, T time, V vocabulary, E embedding, H hidden (the core's output), L layers,
Z latent, S memory slots, D slot width, C classes.
The recurrent core is an L-layer LSTM (z sets h0 and c0 of every layer) or RelGAN's relational
memory (z shifts the initial memory).
A conditional generator (C > 0 classes) reads a code of Z + C columns wherever z goes: z, then
the one-hot of the class c (or any weights over the classes). c's learned embedding is added to
z's projection, so (z, c) sets the initial state, as a translation decoder's state comes from its
encoder. `sample_latent` draws c from the training labels' frequencies with z, so every caller
that draws latents gets conditional fakes; `with_class` puts given classes into a code.
With condition "sentence" the classes are the training pairs' source sentences (a pool held as a
buffer, so a checkpoint samples without its data) and c's columns are a source's reading (F, the
state's width, by a SourceReader) instead of a one-hot: the code is (B, Z + F), `with_source`
reads any sentence into one.
One set of weights serves both regimes: `forward` feeds the gold previous token
(MLE), `sample` feeds back the generator's own output (adversarial training and
sampling), so the discriminator's gradient reaches the generator through the
relaxed one-hot outputs.

`Generator.ops` holds the few operations a faster implementation may replace: the teacher-forced
core run, the output layer's cross-entropy and log-probabilities, the whole teacher-forced loss,
the uniform noise, and one step of keyed sampling (per-sample noise keys, textgan.draws). The
defaults below are the definitions; a replacement computes the same function (within float
rounding) and draws the same noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from textgan import draws, philox
from textgan.gumbel import gumbel_noise, gumbel_softmax
from textgan.models.encoder import SourceReader
from textgan.models.relational_memory import RelationalMemory

NEG = -1e9  # additive logit for tokens the generator never emits
IGNORE = -100  # target id of positions that are not scored


@dataclass
class SampleOutput:
    tokens: torch.Tensor  # (B, T) ids, pad after the first EOS
    lengths: torch.Tensor  # (B,) tokens up to and including EOS (T when no EOS)
    dists: torch.Tensor | None  # (B, T, V) relaxed one-hot seen by the discriminator


def run_core(core: nn.Module, inputs: torch.Tensor, state) -> torch.Tensor:
    """The core's outputs (B, T, H) on teacher-forced inputs (B, T, E) from its initial state."""
    return core(inputs, state)[0]


def _state_rows(state, keep: torch.Tensor):
    """The core's state for the rows `keep` (B,) marks: (h, c) of (L, B, H) each, or a memory (B, S, D)."""
    if isinstance(state, tuple):
        return tuple(part[:, keep] for part in state)
    return state[keep]


def cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor,
                  ignore_index: int) -> torch.Tensor:
    """Mean cross-entropy of the output layer's logits hidden (N, H) @ weight (V, H)^T + bias (V,)
    against targets (N,), over the rows whose target is not `ignore_index` (nan when none is). The
    ignored rows (padding: about half of a COCO batch) never reach the output layer."""
    keep = targets != ignore_index
    return F.cross_entropy(F.linear(hidden[keep], weight, bias), targets[keep])


def sequence_log_probs(logits: torch.Tensor, tokens: torch.Tensor, ignore_index: int = IGNORE) -> torch.Tensor:
    """log p(y_t) (B, T) of tokens (B, T) under logits (B, T, V), differentiable; 0 where a token is
    `ignore_index`. Over the contiguous (B T, V) rows: half the time of cross_entropy over the
    (B, V, T) transpose (strided), the same values to float rounding."""
    b, t, v = logits.shape
    return -F.cross_entropy(logits.reshape(b * t, v), tokens.reshape(b * t), ignore_index=ignore_index,
                            reduction="none").view(b, t)


@torch.no_grad()
def target_log_probs(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor,
                     ignore_index: int) -> torch.Tensor:
    """log softmax(hidden @ weight^T + bias) at each row's target, (N,); 0 at ignored rows. A few
    thousand rows at a time, so scoring a whole test set never holds its (N, V) logits."""
    out = hidden.new_zeros(hidden.shape[0], dtype=weight.dtype)
    rows = max(1, (1 << 22) // weight.shape[0])
    for s in range(0, hidden.shape[0], rows):
        t = targets[s:s + rows]
        logp = torch.log_softmax(F.linear(hidden[s:s + rows].to(weight.dtype), weight, bias), dim=-1)  # (C, V)
        out[s:s + rows] = logp.gather(1, t.clamp(min=0).unsqueeze(1)).squeeze(1).masked_fill(t == ignore_index, 0.0)
    return out


def teacher_forced_nll(gen: "Generator", tokens: torch.Tensor, z: torch.Tensor, pad_id: int,
                       inputs: torch.Tensor | None = None) -> torch.Tensor:
    """Mean teacher-forced NLL of tokens (B, T) over non-pad positions: the core's states, then the
    output layer's cross-entropy. `inputs` (B, T): the tokens fed in (default `tokens`)."""
    hidden = gen.hidden_states(tokens if inputs is None else inputs, z)  # (B, T, H)
    return gen.ops.cross_entropy(hidden.reshape(-1, gen.hidden_dim), gen.out.weight, gen.output_bias(),
                                 tokens.reshape(-1), pad_id)


class _KeyedNoise:
    """noise[t]: step t's Gumbel noise (B, V) of per-sample keys, made when first asked for."""

    def __init__(self, step_noise: Callable, keys: torch.Tensor, vocab_size: int, device):
        self.step_noise, self.keys, self.vocab_size, self.device = step_noise, keys, vocab_size, device
        self.cached: tuple[int, torch.Tensor] | None = None

    def __getitem__(self, t: int) -> torch.Tensor:
        if self.cached is None or self.cached[0] != t:
            self.cached = (t, self.step_noise(self.keys, t, self.vocab_size).to(self.device))
        return self.cached[1]


class _PerSampleKeys:
    """Step t's tokens of the live rows from their own keys' streams (elements t * V ..)."""

    def __init__(self, gumbel_argmax: Callable, keys: torch.Tensor):
        self.gumbel_argmax, self.keys = gumbel_argmax, keys  # keys (B,) int64 on CPU

    def __call__(self, logits: torch.Tensor, rows: torch.Tensor, t: int) -> torch.Tensor:
        return self.gumbel_argmax(logits, self.keys[rows.cpu()], t)


class _WholeDraw:
    """Step t's tokens of the live rows from one (T, B, V) draw under one key: row b's noise at
    elements (t * B + b) * V .., where gumbel_noise((T, B, V)) would have put it."""

    def __init__(self, gumbel_argmax_at: Callable, key: torch.Tensor, batch: int, vocab_size: int):
        self.gumbel_argmax_at, self.key, self.batch, self.vocab_size = gumbel_argmax_at, key, batch, vocab_size

    def __call__(self, logits: torch.Tensor, rows: torch.Tensor, t: int) -> torch.Tensor:
        starts = (t * self.batch + rows.cpu()) * self.vocab_size  # (b',)
        return self.gumbel_argmax_at(logits, self.key.expand(rows.shape[0]).contiguous(), starts)


@dataclass
class GeneratorOps:
    """The operations a faster implementation may swap in (plain functions, so model copies keep them)."""
    core_run: Callable = run_core  # (core, inputs (B, T, E), state) -> (B, T, H)
    cross_entropy: Callable = cross_entropy  # (hidden (N, H), weight, bias, targets (N,), ignore_index) -> mean NLL
    target_log_probs: Callable = target_log_probs  # same arguments -> (N,), no gradients
    mle_loss: Callable = teacher_forced_nll  # (generator, tokens (B, T), z (B, Z), pad_id) -> mean NLL
    uniform: Callable = philox.uniform  # (shape, torch generator) -> U(0, 1) float32 on CPU (Gumbel noise)
    step_noise: Callable = draws.step_gumbel  # (keys (B,), step, V) -> that step's Gumbel noise (B, V) on CPU
    gumbel_argmax: Callable = draws.gumbel_argmax  # (logits (B, V), keys (B,), step) -> tokens (B,)
    gumbel_argmax_at: Callable = draws.gumbel_argmax_at  # (logits (N, V), keys (N,), starts (N,)) -> tokens (N,)


@torch.no_grad()
def open_forget_gates(lstm: nn.LSTM, bias: float = 1.0) -> None:
    """Forget-gate biases of every layer start at `bias` (Jozefowicz et al. 2015; each layer's two
    bias vectors share it): torch's ~0 halves c each step, so a condition set in c0 fades before
    the words it decides (a sentence's subject, two or three tokens in) and is learnt late."""
    h = lstm.hidden_size
    for name, param in lstm.named_parameters():
        if name.startswith("bias_"):
            param[h:2 * h] = bias / 2  # gate order i, f, g, o


class Generator(nn.Module):
    """Embedding, recurrent core and output projection; z sets the core's initial state."""

    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, num_layers: int,
                 latent_dim: int, prior: str, feedback: str = "hard", dropout: float = 0.0,
                 banned: list[int] = (), pad_id: int = 0, bos_id: int = 1, eos_id: int = 2,
                 core: str = "lstm", mem_slots: int = 1, num_heads: int = 2, head_size: int = 256,
                 io_dropout: float = 0.0, tie_embeddings: bool = False, noise: str = "gumbel",
                 num_classes: int = 0, condition: str = "class", source_len: int = 0):
        super().__init__()
        self.ops = GeneratorOps()
        self.vocab_size, self.num_layers = vocab_size, num_layers
        self.latent_dim, self.prior, self.feedback = latent_dim, prior, feedback
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        # gumbel: each sampled token is a draw (Gumbel-max); none: the argmax, and the relaxed
        # one-hot is softmax(logits / tau), so z is the only randomness (Zhang et al. 2017's textGAN)
        self.noise = noise
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        if core == "lstm":
            self.lstm = nn.LSTM(emb_dim, hidden_dim, num_layers, batch_first=True,
                                dropout=dropout if num_layers > 1 else 0.0)
            self.hidden_dim, state_size = hidden_dim, 2 * num_layers * hidden_dim  # z -> (h0, c0)
        else:
            self.memory = RelationalMemory(emb_dim, mem_slots=mem_slots, num_heads=num_heads, head_size=head_size)
            self.hidden_dim = state_size = self.memory.output_dim  # z -> a shift of the memory
        self.core_kind = core
        self.io_dropout = io_dropout  # on the core's teacher-forced inputs and outputs, in training
        self.out = nn.Linear(self.hidden_dim, vocab_size)
        if tie_embeddings:  # one (V, E) matrix: embeddings in, logits out
            if emb_dim != self.hidden_dim:
                raise ValueError(f"tie_embeddings needs emb_dim ({emb_dim}) == the core's output size ({self.hidden_dim})")
            self.embedding.weight = self.out.weight  # starts as the output layer does, U(+-1/sqrt(H))
        # Absent for prior=none: zero LSTM states or the unit-vector memory, the plain LM.
        self.latent_proj = nn.Linear(latent_dim, state_size) if prior != "none" else None
        self.state_vector_size = state_size  # F: the width of `state_vector`
        self.num_classes = num_classes
        self.condition = condition if num_classes else ""
        if num_classes:  # the prior over c: the training labels' shares
            self.register_buffer("class_prior", torch.full((num_classes,), 1.0 / num_classes))
        if self.condition == "class":  # c's share of the initial state
            self.class_embedding = nn.Embedding(num_classes, state_size)
        elif self.condition == "sentence":  # the training sources (B, T) and lengths, set by `set_sources`
            self.source_reader = SourceReader(vocab_size, emb_dim, hidden_dim, state_size)
            if core == "lstm":
                open_forget_gates(self.lstm)
            self.register_buffer("source_pool", torch.full((num_classes, max(source_len, 1)), pad_id))
            self.register_buffer("source_lengths", torch.ones(num_classes, dtype=torch.long))
        mask = torch.zeros(vocab_size)
        mask[list(banned)] = NEG
        self.register_buffer("logit_mask", mask, persistent=False)

    @torch.no_grad()
    def init_normal_(self, std: float) -> None:
        """Every embedding, LSTM and linear weight and bias drawn from N(0, std), as SeqGAN's
        generator starts (std 0.1). torch's defaults draw embeddings from N(0, 1), which on
        the small oracle corpus makes a larger, faster-memorising input signal. Layer norms keep
        their unit gain and zero shift."""
        for module in self.modules():
            if isinstance(module, (nn.Embedding, nn.LSTM, nn.Linear)):
                for param in module.parameters(recurse=False):
                    param.normal_(0.0, std)

    @property
    def core(self) -> nn.Module:
        """The recurrent core: (inputs (B, T, E), state) -> (outputs (B, T, H), state). One
        attribute per kind (`lstm`, `memory`), so an LSTM's checkpoint keys stay what they were."""
        return self.lstm if self.core_kind == "lstm" else self.memory

    def sample_latent(self, num: int, generator: torch.Generator | None = None,
                      classes: torch.Tensor | None = None) -> torch.Tensor:
        """z from the prior, (num, Z); zeros for prior=none. Conditional: the code (num, Z + C),
        z then the one-hot of a class drawn from `class_prior` (after z, from the same generator),
        or of `classes` (num,) where given (the draw is still made, so the stream moves alike)."""
        device = self.out.weight.device
        if self.prior == "normal":
            z = torch.randn(num, self.latent_dim, generator=generator, device=device)
        elif self.prior == "uniform":
            z = torch.rand(num, self.latent_dim, generator=generator, device=device) * 2 - 1
        else:
            z = torch.zeros(num, self.latent_dim, device=device)
        if not self.num_classes:
            return z
        drawn = torch.multinomial(self.class_prior.expand(num, -1), 1, generator=generator)[:, 0]  # (num,)
        return self.with_class(z, drawn if classes is None else classes)

    def prior_mean(self, num: int) -> torch.Tensor:
        """The prior's mean, (num, Z); conditional: z's mean, then the class prior's weights."""
        z = torch.zeros(num, self.latent_dim, device=self.out.weight.device)
        if self.condition == "sentence":  # the mean reading of the pool
            return torch.cat([z, self.source_reader(self.source_pool, self.source_lengths).mean(0).expand(num, -1)], 1)
        return z if not self.num_classes else torch.cat([z, self.class_prior.expand(num, -1)], dim=1)

    def with_class(self, z: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """The code (B, Z + C) of z (B, Z) or a code's z part (B, Z + C), and class ids (B,);
        condition "sentence": the code (B, Z + F) of the pool's sources `classes`."""
        if self.condition == "sentence":
            return self.with_source(z, self.source_pool[classes], self.source_lengths[classes])
        onehot = torch.nn.functional.one_hot(classes.long(), self.num_classes).to(z.dtype)  # (B, C)
        return torch.cat([z[:, :self.latent_dim], onehot], dim=1)

    def with_source(self, z: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The code (B, Z + F) of z (B, Z) and source sentences: ids (B, T) with their lengths (B,)."""
        return torch.cat([z[:, :self.latent_dim], self.source_reader(tokens, lengths).to(z.dtype)], dim=1)

    def set_sources(self, tokens: torch.Tensor, lengths: torch.Tensor) -> None:
        """The pool of training sources (N, T) the prior draws from (N: the classes this was built with)."""
        self.source_pool = tokens.to(self.source_pool.device)
        self.source_lengths = lengths.to(self.source_lengths.device)

    def classes_of(self, code: torch.Tensor) -> torch.Tensor:
        """The class ids (B,) a code (B, Z + C) weights most."""
        return code[:, self.latent_dim:].argmax(dim=1)

    def conditions_of(self, code: torch.Tensor) -> torch.Tensor:
        """What a conditional discriminator reads of a code: its class ids (B,), or its source
        reading (B, F), detached, so G cannot move the condition D sees."""
        return code[:, self.latent_dim:].detach() if self.condition == "sentence" else self.classes_of(code)

    def conditions_of_classes(self, classes: torch.Tensor) -> torch.Tensor:
        """`conditions_of` for given class ids (B,) (real sentences' labels): the ids, or the pool's readings."""
        if self.condition != "sentence":
            return classes
        with torch.no_grad():
            return self.source_reader(self.source_pool[classes], self.source_lengths[classes])

    def init_state(self, z: torch.Tensor):
        """The core's initial state: (h0, c0), each (L, B, H), or the memory (B, S, D)."""
        b = z.shape[0]
        if self.core_kind == "relational_memory":
            memory = self.memory.initial_memory(b, z.device, z.dtype)  # (B, S, D)
            if self.latent_proj is None and not self.num_classes:
                return memory
            return memory + self.state_vector(z).view(memory.shape)
        hc = self.state_vector(z).view(b, 2, self.num_layers, self.hidden_dim)  # (B, 2, L, H)
        hc = hc.permute(1, 2, 0, 3).contiguous()  # (2, L, B, H)
        return hc[0], hc[1]

    def state_vector(self, z: torch.Tensor) -> torch.Tensor:
        """The initial state as one row each: the LSTM's h0 then c0, layer by layer (B, 2 * L * H),
        or the memory's shift. Conditional: z's projection plus the code's class weights times
        the class embeddings, or plus its source's reading."""
        if self.latent_proj is None:
            state = torch.zeros(z.shape[0], self.state_vector_size, device=z.device, dtype=z.dtype)
        else:
            state = self.latent_proj(z[:, :self.latent_dim] if self.num_classes else z)
        if self.condition == "sentence":
            state = state + z[:, self.latent_dim:]  # (B, F): the source's reading
        elif self.num_classes:
            state = state + z[:, self.latent_dim:] @ self.class_embedding.weight  # (B, C) @ (C, state)
        return state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(hidden) + self.logit_mask

    def hidden_states(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Teacher-forced top-layer states (B, T, H): position t sees BOS and the tokens (B, T)
        before t (the gold ones, or a word-dropped copy of them)."""
        bos = torch.full_like(tokens[:, :1], self.bos_id)
        inputs = torch.cat([bos, tokens[:, :-1]], dim=1)  # (B, T)
        emb, state = self._io_drop(self.embedding(inputs)), self.init_state(z)
        hidden = self.ops.core_run(self.core, emb, state)  # (B, T, H)
        return self._io_drop(hidden)

    def _io_drop(self, x: torch.Tensor) -> torch.Tensor:
        """generator.io_dropout on teacher-forced embeddings or core outputs, while training: the
        usual LSTM language-model regulariser (Zaremba et al. 2014), which the single-layer core's
        between-layer dropout cannot give."""
        return nn.functional.dropout(x, self.io_dropout, training=True) if self.training and self.io_dropout else x

    def forward(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V)."""
        return self.logits(self.hidden_states(tokens, z))

    def mle_loss(self, tokens: torch.Tensor, z: torch.Tensor, pad_id: int,
                 inputs: torch.Tensor | None = None) -> torch.Tensor:
        """Mean teacher-forced NLL over non-pad tokens: the cross-entropy of `forward`'s logits
        (`teacher_forced_nll`). `inputs` (B, T): other tokens to feed in while scoring `tokens`
        (word dropout, Bowman et al. 2016); they run the layered path, as the fused loss reads its
        inputs from its targets."""
        if inputs is None:
            return self.ops.mle_loss(self, tokens, z, pad_id)
        return teacher_forced_nll(self, tokens, z, pad_id, inputs=inputs)

    @torch.no_grad()
    def token_log_probs(self, tokens: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor,
                        temperature: float = 1.0) -> torch.Tensor:
        """Teacher-forced log p of each gold token, (B, t) with t the longest length; 0 past each
        sequence's length. Chunk-wise from the output layer: no (B, T, V) logits. `temperature`
        scores under the distribution `sample` draws from at that temperature (logits / T)."""
        t = max(int(lengths.max()), 1) if lengths.numel() else tokens.shape[1]
        tokens = tokens[:, :t]
        hidden = self.hidden_states(tokens, z)  # (B, t, H)
        alive = torch.arange(t, device=tokens.device) < lengths.unsqueeze(1)  # (B, t)
        targets = tokens.masked_fill(~alive, IGNORE)
        weight, bias = self.out.weight, self.output_bias()
        if temperature != 1.0:  # (h W' + b) / T + mask, as sample() tempers its logits
            weight, bias = weight / temperature, self.out.bias / temperature + self.logit_mask
        logp = self.ops.target_log_probs(hidden.reshape(-1, self.hidden_dim), weight, bias,
                                         targets.reshape(-1), IGNORE)
        return logp.view(tokens.shape)

    def output_bias(self) -> torch.Tensor:
        """The output layer's bias with the banned tokens' -1e9, (V,)."""
        return self.out.bias + self.logit_mask

    def sample(self, z: torch.Tensor, max_len: int, tau: float = 1.0, straight_through: bool = False,
               temperature: float = 1.0, generator: torch.Generator | None = None,
               need_dists: bool = True, noise: torch.Tensor | None = None,
               noise_keys: torch.Tensor | None = None) -> SampleOutput:
        """Free-running sampling: each step's Gumbel-max token (or its relaxation) is the next input.

        `temperature` divides the logits of the distribution sampled from; `tau` only sets how
        soft the relaxed one-hot is. `noise` (T, B, V): Gumbel noise to use instead of drawing it
        from `generator` (the latent metrics hold it fixed while z changes). `noise_keys` (B,) int64:
        per-sample Philox keys instead (textgan.draws: row b's step t noise is elements t * V ..
        of its key's stream, made a step at a time; hard tokens without dists take `ops.gumbel_argmax`).
        With self.noise=none no noise is added: argmax tokens, softmax(logits / tau) relaxed.
        """
        b, device = z.shape[0], z.device
        keyed = noise_keys is not None and self.noise != "none"
        pick = None  # hard tokens without dists: picked from Philox noise by the fused kernel, none made
        if not need_dists and self.feedback == "hard":
            if keyed:
                pick = _PerSampleKeys(self.ops.gumbel_argmax, noise_keys)
            elif noise is None and self.noise != "none" and philox.applies(device, torch.float32):
                # the tokens of the (T, B, V) draw below without making it: one Philox key's stream
                # (gumbel_noise draws one), row b's step t at (t * B + b) * V
                key = torch.tensor([philox.new_key(generator)], dtype=torch.int64)
                pick = _WholeDraw(self.ops.gumbel_argmax_at, key, b, self.vocab_size)
        if pick is None:  # the noise each step reads
            if keyed:
                noise = _KeyedNoise(self.ops.step_noise, noise_keys, self.vocab_size, device)
            elif self.noise == "none":
                # logits + 0 is logits
                noise = torch.zeros((1, 1, 1), device=device).expand(max_len, b, self.vocab_size)
            elif noise is None:
                noise = gumbel_noise((max_len, b, self.vocab_size), generator, device,
                                     uniform=self.ops.uniform)  # (T, B, V)
        state = self.init_state(z)
        inp = self.embedding(torch.full((b, 1), self.bos_id, device=device, dtype=torch.long))
        if pick is not None:
            return self._finish(self._keyed_tokens(state, inp, max_len, temperature, pick), None)
        ids_steps, dist_steps = [], []
        for t in range(max_len):
            hidden, state = self.core(inp, state)  # (B, 1, H)
            logits = self.out(hidden[:, 0])  # (B, V)
            if temperature != 1.0:  # x / 1 is x: one pass over (B, V) fewer at the usual temperature
                logits = logits / temperature
            logits = logits + self.logit_mask
            if need_dists or self.feedback != "hard":
                ids, dist = gumbel_softmax(logits, tau, noise[t], straight_through=straight_through)
                dist_steps.append(dist)
            else:
                ids, dist = (logits + noise[t]).argmax(dim=-1), None
            ids_steps.append(ids)
            soft_noise = None if self.feedback == "hard" else noise[t]  # hard feedback reads no noise
            inp = self._feedback(ids, dist, logits, tau, soft_noise).unsqueeze(1)  # (B, 1, E)
        return self._finish(torch.stack(ids_steps, 1), torch.stack(dist_steps, 1) if need_dists else None)

    @torch.no_grad()  # tokens only: nothing to differentiate, and addmm's out= refuses autograd
    def _keyed_tokens(self, state, inp: torch.Tensor, max_len: int, temperature: float,
                      pick: Callable) -> torch.Tensor:
        """`sample`'s hard tokens (B, T) without dists, each step's picked from Philox noise by `pick`
        (logits (b', V), the live rows' sample indices (b',), step) -> tokens (b',): `ops.gumbel_argmax`
        or `ops.gumbel_argmax_at`, fused in one kernel where accel has it, no (B, V) noise at all. The mask
        rides in the bias, one pass over (B, V) fewer: the same logits wherever a token is allowed.
        A row leaves the batch once it has emitted EOS: its later tokens are padding whatever they
        would be, and each row's noise is its own key's, so the others' tokens do not change (a
        COCO batch ran to its longest sentence, three times the mean length, on every row). Every
        step's logits go to one buffer, F.linear's own addmm with out=: the same numbers, without
        a fresh multi-MB allocation a step (its pages faulted in anew: ~10 % of sampling on CPU)."""
        bias, b = self.output_bias(), inp.shape[0]
        tokens = torch.full((b, max_len), self.pad_id, dtype=torch.long, device=inp.device)
        rows = torch.arange(b, device=inp.device)  # the sample each live row is
        weight_t, buffer = self.out.weight.t(), bias.new_empty(b, self.vocab_size)  # (H, V), (B, V)
        for t in range(max_len):
            hidden, state = self.core(inp, state)  # (b', 1, H)
            logits = torch.addmm(bias, hidden[:, 0], weight_t, out=buffer[:hidden.shape[0]])  # (b', V)
            logits = logits / temperature if temperature != 1.0 else logits
            ids = pick(logits, rows, t)  # (b',)
            tokens[rows, t] = ids.to(tokens.device)
            live = ids != self.eos_id  # (b',)
            if not bool(live.all()):
                if not bool(live.any()):
                    break
                rows, ids, state = rows[live.to(rows.device)], ids[live], _state_rows(state, live.to(hidden.device))
            inp = self.embedding(ids.to(hidden.device)).unsqueeze(1)  # (b', 1, E)
        return tokens

    def _feedback(self, ids, dist, logits, tau, noise) -> torch.Tensor:  # noise: (B, V), read by soft feedback
        """The next input embedding (B, E) for the chosen feedback mode."""
        if self.feedback == "hard":
            return self.embedding(ids)
        soft = torch.softmax((logits + noise) / tau, dim=-1)  # (B, V)
        if self.feedback == "straight_through":
            hard = torch.zeros_like(soft).scatter_(-1, ids.unsqueeze(-1), 1.0)
            soft = hard + (soft - soft.detach())
        return soft @ self.embedding.weight

    def _finish(self, ids: torch.Tensor, dists: torch.Tensor | None) -> SampleOutput:
        """Cut every sequence after its first EOS: pad ids and pad one-hots from there on."""
        b, t = ids.shape
        is_eos = ids == self.eos_id
        first = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full_like(ids[:, 0], t - 1))
        lengths = first + 1  # (B,)
        alive = torch.arange(t, device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        ids = ids.masked_fill(~alive, self.pad_id)
        if dists is not None and not bool(alive.all()):
            pad = torch.zeros(self.vocab_size, device=ids.device, dtype=dists.dtype)
            pad[self.pad_id] = 1.0
            # In place on the dead positions only (autograd-safe: the stack that made `dists` keeps
            # nothing for its backward, and overwritten entries get no gradient, as with a where);
            # a where over all of (B, T, V) read and wrote 44 MB per sample at the benchmark size.
            dists[~alive] = pad
        return SampleOutput(tokens=ids, lengths=lengths, dists=dists)
