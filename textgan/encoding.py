"""Real sentences to z and back: `textgan encode`, interpolation between two sentences, greedy
decoding (Bowman et al. 2016's homotopies), and the interpolation `textgan train` prints.

Shapes: N sentences, T time, V vocabulary, Z latent.
z of a sentence is the variational encoder's mean E_q[z | x] (mle.objective: elbo) or the
reconstruction head's output (adversarial.info_weight > 0).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from textgan import checkpoint
from textgan.corpus import Corpus
from textgan.data import tokenize
from textgan.errors import UserError
from textgan.latent_training import ENCODER, HEAD, build_encoder, build_head
from textgan.models.encoder import SentenceEncoder
from textgan.models.generator import Generator
from textgan.sample import Loaded, interpolate

ENCODERS = ("auto", "variational", "info")  # --encoder: which network maps a sentence to z


def _encoders(loaded: Loaded) -> dict[str, tuple[SentenceEncoder, dict]]:
    """The run's sentence encoders by ENCODERS name (unloaded modules and their weights); the
    checkpoint is read only where the run's config has one."""
    cfg, vocab_size = loaded.config, len(loaded.vocab)
    built = {name: (key, build(cfg, vocab_size))
             for name, key, build in (("variational", ENCODER, build_encoder), ("info", HEAD, build_head))}
    built = {name: (key, module) for name, (key, module) in built.items() if module is not None}
    state = checkpoint.load(loaded.path) if built else {}
    found: dict[str, tuple[SentenceEncoder, dict]] = {}
    for name, (key, module) in built.items():
        part = checkpoint.read_latent_part(state, key)
        if part is not None:
            found[name] = (module, part.weights)
    return found


def _ready(loaded: Loaded, encoder: SentenceEncoder, weights: dict) -> SentenceEncoder:
    encoder.load_state_dict(weights)
    return encoder.to(loaded.generator.out.weight.device).eval()


def load_encoder(loaded: Loaded, which: str = "auto") -> SentenceEncoder:
    """The run's sentence encoder, from the checkpoint file `loaded` came from."""
    found = _encoders(loaded)
    if not found:
        raise UserError(f"{loaded.path} has no sentence encoder: train with mle.objective=elbo (a variational "
                        "encoder) or adversarial.info_weight > 0 (a reconstruction head)")
    name = next(iter(found)) if which == "auto" else which
    if name not in found:
        raise UserError(f"{loaded.path} has no {name} encoder; use --encoder {next(iter(found))}")
    return _ready(loaded, *found[name])


def variational_encoder(loaded: Loaded) -> SentenceEncoder | None:
    """The run's q(z | x) (mle.objective elbo), None in a run without one."""
    found = _encoders(loaded).get("variational")
    return None if found is None else _ready(loaded, *found)


def sentence_ids(loaded: Loaded, lines: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (N, max_len) and lengths (N,) of text lines, tokenized as the run's data was;
    an empty line, a line of only unknown words or one too long for the run is a one-line error."""
    data, vocab, max_len = loaded.config.data, loaded.vocab, loaded.max_len
    eos = [vocab.eos_id] if data.source != "oracle" else []
    rows, lengths = [], []
    for number, line in enumerate(lines, 1):
        where = f"line {number}" if len(lines) > 1 else "the text"
        words = tokenize(line, data.tokenizer, data.lowercase)
        if not words:
            raise UserError(f"{where} is empty; give one sentence per line")
        ids = vocab.encode(words)
        if all(i == vocab.unk_id for i in ids):
            raise UserError(f"{where} ({line.strip()[:40]!r}) has no word of the run's vocabulary; "
                            "give a sentence in the language the run was trained on")
        if len(ids) + len(eos) > max_len:
            raise UserError(f"{where} has {len(ids)} tokens; this run's sentences hold at most "
                            f"{max_len - len(eos)} (data.max_len {max_len}); shorten it")
        rows.append(ids + eos + [vocab.pad_id] * (max_len - len(ids) - len(eos)))
        lengths.append(len(ids) + len(eos))
    return torch.tensor(rows, dtype=torch.long), torch.tensor(lengths, dtype=torch.long)


@torch.no_grad()
def encode_text(loaded: Loaded, lines: list[str], which: str = "auto") -> torch.Tensor:
    """z (N, Z) of each line."""
    if not lines:
        raise UserError("no sentences to encode; give --text or a --file with one sentence per line")
    if loaded.generator.prior == "none":
        raise UserError("this generator has prior=none: there is no latent to encode into")
    encoder = load_encoder(loaded, which)
    tokens, lengths = sentence_ids(loaded, lines)
    device = loaded.generator.out.weight.device
    mean, _ = encoder.encode_ids(tokens.to(device), lengths.to(device))
    return mean.cpu()


def write_latent(z: torch.Tensor, out: str | Path, force: bool) -> Path:
    """z as a float32 .npy file, written whole or not at all; never over a file without `force`."""
    out = Path(out)
    if out.exists() and not force:
        raise UserError(f"--out {out} already exists; choose a new file name or add --force")
    tmp = out.with_name(out.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, z.numpy().astype(np.float32), allow_pickle=False)
        tmp.replace(out)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {out} ({err.strerror or err}); choose a writable path") from None
    return out


@torch.no_grad()
def greedy_decode(generator: Generator, z: torch.Tensor, max_len: int) -> torch.Tensor:
    """Token ids (N, T) with the noise off: the generator's own free-running sampling under zero
    Gumbel noise, so each step's most likely token is the next input (fed back as the generator
    feeds its samples back), and no relaxed one-hots are kept."""
    was = generator.training
    generator.eval()
    off = torch.zeros((), device=z.device).expand(max_len, z.shape[0], generator.vocab_size)  # (T, N, V)
    out = generator.sample(z, max_len, need_dists=False, noise=off)
    generator.train(was)
    return out.tokens


def decode_text(loaded: Loaded, z: torch.Tensor) -> list[str]:
    """Greedy sentences of z (N, Z)."""
    ids = greedy_decode(loaded.generator, z.to(loaded.generator.out.weight.device), loaded.max_len)
    return [" ".join(loaded.vocab.decode(row)) for row in ids.tolist()]


def text_interpolation(loaded: Loaded, start: str, end: str, steps: int, which: str = "auto") -> list[str]:
    """Greedy sentences at `steps` points on the straight line between the encodings of two sentences."""
    z = encode_text(loaded, [start, end], which)
    return decode_text(loaded, interpolate(z[0], z[1], steps, spherical=False))


@torch.no_grad()
def training_interpolation(G: Generator, encoder: SentenceEncoder | None, corpus: Corpus, seed: int,
                           steps: int = 8) -> tuple[str, list[str]]:
    """What `textgan train` prints after its samples: with a sentence encoder, the greedy path
    between the first two test sentences' z; else between two prior draws under one Gumbel noise;
    nothing for prior=none. A header line and the sentences."""
    from textgan.evaluate import generate  # (evaluate imports the metrics; only needed here)

    device = G.out.weight.device
    if G.prior == "none":
        return "", []
    if encoder is not None:
        was = encoder.training
        encoder.eval()
        tokens, lengths = corpus.test.tokens[:2].to(device), corpus.test.lengths[:2].to(device)
        mean, _ = encoder.encode_ids(tokens, lengths)
        encoder.train(was)
        ids = greedy_decode(G, interpolate(mean[0], mean[1], steps, spherical=False), corpus.max_len)
        ends = [" ".join(corpus.vocab.decode(row)) for row in tokens.tolist()]
        header = f'interpolation from "{ends[0]}" to "{ends[1]}" (their encoded z, greedy decoding):'
    else:
        rng = torch.Generator(device=device).manual_seed(seed + 15)
        ends = G.sample_latent(2, rng)  # (2, Z), or conditional codes (2, Z + C)
        z = interpolate(*ends[:, :G.latent_dim], steps, spherical=G.prior == "normal")
        if G.num_classes:  # the first end's class (or source's reading) all along: only z moves
            z = torch.cat([z, ends[:1, G.latent_dim:].expand(steps, -1)], dim=1)
        ids = torch.cat([generate(G, 1, corpus.max_len, seed + 16, z=point.unsqueeze(0))
                         for point in z])  # the same noise at each point: sample 0's of seed + 16
        header = "interpolation between two prior draws of z (one Gumbel noise for every point):"
    return header, [" ".join(corpus.vocab.decode(row)) for row in ids.tolist()]
