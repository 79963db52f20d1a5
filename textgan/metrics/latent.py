"""How much the latent z decides a generated sentence: a mutual-information lower bound,
sensitivity to a redrawn z at fixed Gumbel noise, and latent interpolation statistics.

Shapes: N sentences, K latent draws scored per sentence, P interpolation pairs, S points on a
path, T time, V vocabulary, Z latent.

A generator that ignores z (issue 46: every MLE-trained one does, since z is drawn independently
of the sentence) scores 0 on all three; one whose sentence is a function of z scores near log K,
near 1, and S distinct sentences per path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from textgan.gumbel import gumbel_noise

SCORE_ELEMENTS = 1 << 23  # hidden-state entries (rows * T * H) teacher-forced at once by latent_mi
SAMPLE_ROWS = 1024  # sentences sampled at once (the Gumbel noise is (T, rows, V))
NOISE_ROWS = 1024  # sentences whose fixed noise latent_sensitivity draws at once, (T, rows, V)


@dataclass
class LatentMI:
    nats: float  # mean of the bound over the N sentences: a lower bound on I(z; x), <= log K
    k: int  # latent draws each sentence is scored under (its own z and K - 1 fresh prior draws)
    log_k: float  # the bound's ceiling, log K


@dataclass
class Sensitivity:
    sentences: float  # share of sentences that change when z is redrawn at fixed noise
    tokens: float  # share of token positions (up to the longer one's EOS) that change


@dataclass
class Interpolation:
    distinct: float  # distinct sentences along a path of `steps` points, mean over pairs (1..steps)
    edit: float  # token edit distance between neighbouring points, mean over neighbours and pairs
    steps: int


class _Eval:
    """Eval mode inside, the caller's mode restored after."""

    def __init__(self, module: torch.nn.Module):
        self.module, self.was_training = module, module.training

    def __enter__(self):
        self.module.eval()

    def __exit__(self, *exc):
        self.module.train(self.was_training)


def _draw(generator, z: torch.Tensor, max_len: int, temperature: float,
          noise: torch.Tensor | None = None, rng: torch.Generator | None = None):
    """Free-running samples of z (N, Z) in chunks of SAMPLE_ROWS: (tokens (N, T), lengths (N,)).
    `noise` (T, N, V): the Gumbel noise of every row, else drawn from `rng`."""
    tokens, lengths = [], []
    for start in range(0, z.shape[0], SAMPLE_ROWS):
        rows = slice(start, start + SAMPLE_ROWS)
        out = generator.sample(z[rows], max_len, temperature=temperature, generator=rng,
                               need_dists=False, noise=None if noise is None else noise[:, rows])
        tokens.append(out.tokens)
        lengths.append(out.lengths)
    return torch.cat(tokens), torch.cat(lengths)


def pair_log_likelihoods(generator, tokens: torch.Tensor, lengths: torch.Tensor, zs: torch.Tensor,
                         temperature: float = 1.0) -> torch.Tensor:
    """log p(x_i | z_ik) under the distribution sampled from, (N, K) in float64: each sentence
    (tokens (N, T), lengths (N,)) teacher-forced under each of its K latents zs (N, K, Z), in
    chunks of about SCORE_ELEMENTS hidden entries. A generator without Gumbel noise
    (generator.noise=none) samples its argmax decoding: p(x | z) is 1 where decoding z gives x,
    else 0 (log: 0 or -inf)."""
    n, k, _ = zs.shape
    t = max(int(lengths.max()), 1)
    flat_z = zs.reshape(n * k, -1)  # (N*K, Z), row i*K + j is z_ij
    if generator.noise == "none":
        decoded, dec_len = _draw(generator, flat_z, tokens.shape[1], temperature)  # (N*K, T)
        same = (decoded == tokens.repeat_interleave(k, 0)).all(1) & (dec_len == lengths.repeat_interleave(k))
        zero = torch.zeros((), dtype=torch.float64, device=zs.device)
        return torch.where(same, zero, -math.inf).view(n, k)
    rows = max(1, SCORE_ELEMENTS // (t * generator.hidden_dim))
    # shortest sentences first, so each chunk is teacher-forced only up to its own longest one
    order = torch.argsort(lengths, stable=True).repeat_interleave(k) * k + torch.arange(k, device=zs.device).repeat(n)
    out = torch.empty(n * k, dtype=torch.float64, device=zs.device)
    for start in range(0, n * k, rows):
        pick = order[start:start + rows]  # (rows,) flat indices i * K + j
        logp = generator.token_log_probs(tokens[pick // k, :t], lengths[pick // k], flat_z[pick], temperature)
        out[pick] = logp.double().sum(1)
    return out.view(n, k)


def mi_terms(log_lik: torch.Tensor) -> torch.Tensor:
    """Each sentence's bound term, (N,): log p(x_i | z_i) - log((1/K) sum_k p(x_i | z_k)), with
    log_lik (N, K) holding its own z's score in column 0. Each term is at most log K."""
    k = log_lik.shape[1]
    return log_lik[:, 0] - (torch.logsumexp(log_lik, dim=1) - math.log(k))


@torch.inference_mode()
def latent_mi(generator, num: int, k: int, max_len: int, rng: torch.Generator,
              temperature: float = 1.0) -> LatentMI:
    """The contrastive (InfoNCE-form) lower bound on I(z; x), in nats: `num` sentences x_i drawn
    from p(x | z_i), each scored under its own z_i and K - 1 fresh prior draws with the generator's
    own likelihood, the optimal critic (van den Oord et al. 2018; Poole et al. 2019). Valid for
    any K >= 2 and at most log K, so a generator whose z decides the sentence shows near log K.
    Draws from `rng`, in order: z (N, Z), the samples' noise, the other latents (N * (K - 1), Z)."""
    if k < 2:
        raise ValueError(f"latent_mi needs K >= 2 latent draws per sentence, got {k}")
    with _Eval(generator):
        z = generator.sample_latent(num, rng)  # (N, Z)
        tokens, lengths = _draw(generator, z, max_len, temperature, rng=rng)
        others = generator.sample_latent(num * (k - 1), rng).view(num, k - 1, -1)  # (N, K-1, Z)
        log_lik = pair_log_likelihoods(generator, tokens, lengths, torch.cat([z.unsqueeze(1), others], 1),
                                       temperature)  # (N, K)
        if generator.noise == "none":
            # x_i is z_i's decoding by construction (a re-decode in another batch could break a tie apart)
            log_lik[:, 0] = 0.0
    return LatentMI(nats=float(mi_terms(log_lik).mean()), k=k, log_k=math.log(k))


def _fixed_noise(generator, max_len: int, rows: int, rng: torch.Generator) -> torch.Tensor:
    return gumbel_noise((max_len, rows, generator.vocab_size), rng, generator.out.weight.device,
                        uniform=generator.ops.uniform)  # (T, rows, V)


@torch.inference_mode()
def latent_sensitivity(generator, num: int, max_len: int, rng: torch.Generator,
                       temperature: float = 1.0) -> Sensitivity:
    """Draw `num` sentences twice, from two independent prior draws of z but the same Gumbel
    noise: what changes, changes because z did. Draws from `rng`: z, the other z, the noise (T, rows, V)
    of each NOISE_ROWS sentences in turn (one (T, N, V) tensor up to NOISE_ROWS sentences), so
    memory stays bounded whatever `num`."""
    if num < 1:
        return Sensitivity(sentences=0.0, tokens=0.0)
    parts = []
    with _Eval(generator):
        za, zb = generator.sample_latent(num, rng), generator.sample_latent(num, rng)  # (N, Z) each
        for start in range(0, num, NOISE_ROWS):
            rows = slice(start, start + NOISE_ROWS)
            noise = _fixed_noise(generator, max_len, za[rows].shape[0], rng)  # (T, rows, V)
            parts.append((*_draw(generator, za[rows], max_len, temperature, noise=noise),
                          *_draw(generator, zb[rows], max_len, temperature, noise=noise)))
    ta, la, tb, lb = (torch.cat(list(col)) for col in zip(*parts))
    alive = torch.arange(ta.shape[1], device=ta.device) < torch.maximum(la, lb).unsqueeze(1)  # (N, T)
    differ = (ta != tb) & alive
    return Sensitivity(sentences=int(differ.any(1).sum()) / num, tokens=float(differ.sum()) / max(int(alive.sum()), 1))


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance between two token sequences (insert, delete, substitute: 1 each)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def path_stats(path: list[list[int]]) -> tuple[int, float]:
    """(distinct sentences, mean edit distance between neighbours) of one path's token lists."""
    edits = [edit_distance(a, b) for a, b in zip(path, path[1:])]
    return len({tuple(s) for s in path}), sum(edits) / max(len(edits), 1)


@torch.inference_mode()
def interpolation_stats(generator, pairs: int, steps: int, max_len: int, rng: torch.Generator,
                        temperature: float = 1.0) -> Interpolation:
    """Walk `steps` points between two prior draws (spherically for a normal prior, as `textgan
    sample --interpolate`), every point of a path under the same Gumbel noise, for `pairs` pairs.
    Draws from `rng`: the starts (P, Z), the ends (P, Z), the noise (T, P, V)."""
    from textgan.sample import interpolate  # here: textgan.sample imports textgan.evaluate, which imports this

    if steps < 2:
        raise ValueError(f"interpolation needs >= 2 points per path, got {steps}")
    with _Eval(generator):
        z0, z1 = generator.sample_latent(pairs, rng), generator.sample_latent(pairs, rng)  # (P, Z) each
        spherical = generator.prior == "normal"
        path = torch.stack([interpolate(z0[p], z1[p], steps, spherical=spherical) for p in range(pairs)])  # (P, S, Z)
        noise = _fixed_noise(generator, max_len, pairs, rng).repeat_interleave(steps, dim=1)  # (T, P*S, V)
        tokens, lengths = _draw(generator, path.reshape(pairs * steps, -1), max_len, temperature, noise=noise)
    rows = [row[:n] for row, n in zip(tokens.tolist(), lengths.tolist())]
    stats = [path_stats(rows[p * steps:(p + 1) * steps]) for p in range(pairs)]
    return Interpolation(distinct=sum(s[0] for s in stats) / pairs, edit=sum(s[1] for s in stats) / pairs,
                         steps=steps)


def latent_metrics(generator, max_len: int, seed: int, num: int, k: int, pairs: int, steps: int,
                   temperature: float = 1.0) -> dict[str, float]:
    """The metrics under their reported names: latent_mi_K and latent_mi_K_max (= log K),
    latent_sensitivity and latent_token_change (num > 0); interp_distinct and interp_edit
    (pairs > 0). Each family draws from its own generator seeded from `seed`."""
    device = generator.out.weight.device
    out: dict[str, float] = {}
    if num > 0:
        mi = latent_mi(generator, num, k, max_len, torch.Generator(device=device).manual_seed(seed),
                       temperature=temperature)
        out[f"latent_mi_{k}"], out[f"latent_mi_{k}_max"] = mi.nats, mi.log_k
        sens = latent_sensitivity(generator, num, max_len, torch.Generator(device=device).manual_seed(seed + 1),
                                  temperature=temperature)
        out["latent_sensitivity"], out["latent_token_change"] = sens.sentences, sens.tokens
    if pairs > 0:
        interp = interpolation_stats(generator, pairs, steps, max_len,
                                     torch.Generator(device=device).manual_seed(seed + 2), temperature=temperature)
        out["interp_distinct"], out["interp_edit"] = interp.distinct, interp.edit
    return out


def latent_metric_names(num: int, k: int, pairs: int) -> list[str]:
    """What latent_metrics returns for these settings."""
    names = [f"latent_mi_{k}", f"latent_mi_{k}_max", "latent_sensitivity", "latent_token_change"] if num > 0 else []
    return names + (["interp_distinct", "interp_edit"] if pairs > 0 else [])


def is_latent_metric(name: str) -> bool:
    """Whether a metric name is one of latent_metrics' (TensorBoard files them under latent/*)."""
    return name.startswith(("latent_mi_", "latent_sensitivity", "latent_token_change", "interp_distinct",
                            "interp_edit"))
