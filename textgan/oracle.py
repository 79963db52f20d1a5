"""Built-in synthetic corpora: the SeqGAN oracle LSTM and a small English-like grammar.

Shapes: B batch, T time, V vocabulary, E embedding, H hidden.
The oracle ("target LSTM", Yu et al. 2017, SeqGAN) is a fixed random language
model: its samples are the training data and its likelihood of generated text is
NLL_oracle, a quality score that needs no human references. The grammar lives in
`textgan.grammar` and is re-exported here because both are built-in corpora.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from textgan.data import DataError
from textgan.grammar import grammaticality, sample_grammar

__all__ = ["OracleLSTM", "grammaticality", "sample_grammar"]

START_TOKEN = 0  # first input; also an ordinary vocabulary id (SeqGAN)
GATES = ("i", "f", "og", "c")  # SeqGAN's names: input, forget, output gate, cell candidate
KEYS = ("g_embeddings", *(f"W{g}" for g in GATES), *(f"U{g}" for g in GATES),
        *(f"b{g}" for g in GATES), "Wo", "bo")
FIX = "set data.oracle_params=oracle/seqgan_target_params.npz (relative to data.root), or '' for a random oracle"


def _expected_shapes(vocab_size: int, emb_dim: int, hidden_dim: int) -> dict[str, tuple[int, ...]]:
    shapes = {"g_embeddings": (vocab_size, emb_dim), "Wo": (hidden_dim, vocab_size), "bo": (vocab_size,)}
    for g in GATES:
        shapes |= {f"W{g}": (emb_dim, hidden_dim), f"U{g}": (hidden_dim, hidden_dim), f"b{g}": (hidden_dim,)}
    return shapes


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of a .npz, never unpickling; every failure is a one-line DataError."""
    if not path.is_file():
        raise DataError(f"oracle parameters {path} not found; {FIX}")
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an archive")
        with npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise DataError(f"oracle parameters {path} lack {', '.join(missing)}; "
                                f"give SeqGAN's target LSTM arrays ({', '.join(KEYS)}), or {FIX}")
            return {k: npz[k] for k in KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        reason = str(err).splitlines()[0] if str(err) else err.__class__.__name__
        raise DataError(f"oracle parameters {path} are not a readable .npz of arrays ({reason}); {FIX}") from None


class OracleLSTM(nn.Module):
    """SeqGAN's target LSTM with frozen float32 buffers; sampling and scoring only.

    Gates are stored fused, input weights (E, 4H) and hidden weights (H, 4H) in the
    order i, f, o, c~, so one time step costs one (B, H) x (H, 4H) matmul: the input
    part x W + b depends only on the previous token and is looked up from a (V, 4H) table.
    """

    def __init__(self, params: dict[str, torch.Tensor], seq_len: int = 20):
        super().__init__()
        if seq_len < 1:
            raise ValueError("seq_len must be >= 1")
        f32 = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in params.items()}
        self.vocab_size, self.emb_dim = f32["g_embeddings"].shape
        self.hidden_dim = f32["bi"].shape[0]
        self.seq_len = seq_len
        self.register_buffer("emb", f32["g_embeddings"].clone())  # (V, E)
        self.register_buffer("w_x", torch.cat([f32[f"W{g}"] for g in GATES], dim=1))  # (E, 4H)
        self.register_buffer("w_h", torch.cat([f32[f"U{g}"] for g in GATES], dim=1))  # (H, 4H)
        self.register_buffer("b", torch.cat([f32[f"b{g}"] for g in GATES]))  # (4H,)
        self.register_buffer("w_out", f32["Wo"].t().contiguous())  # (V, H): F.linear is ~3x faster than h @ (H, V)
        self.register_buffer("b_out", f32["bo"].clone())  # (V,)

    @classmethod
    def from_npz(cls, path: str | Path, seq_len: int = 20) -> OracleLSTM:
        """Load SeqGAN's target parameters (keys g_embeddings, Wi.., Ui.., bi.., Wo, bo)."""
        path = Path(path)
        arrays = _read_npz(path)
        emb = arrays["g_embeddings"]
        if emb.ndim != 2 or arrays["bi"].ndim != 1:
            raise DataError(f"oracle parameters {path}: g_embeddings must be (V, E) and bi (H,), "
                            f"got {emb.shape} and {arrays['bi'].shape}; {FIX}")
        expected = _expected_shapes(emb.shape[0], emb.shape[1], arrays["bi"].shape[0])
        for key, shape in expected.items():
            arr = arrays[key]
            if arr.shape != shape:
                raise DataError(f"oracle parameters {path}: {key} has shape {arr.shape}, expected {shape}; {FIX}")
            if arr.dtype.kind not in "fiu" or not np.isfinite(arr).all():
                raise DataError(f"oracle parameters {path}: {key} must hold finite numbers; {FIX}")
        return cls({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()},
                   seq_len=seq_len)

    @classmethod
    def random(cls, seq_len: int = 20, seed: int = 0, vocab_size: int = 5000, emb_dim: int = 32,
               hidden_dim: int = 32) -> OracleLSTM:
        """Every parameter N(0, 1), the field's standard random oracle, drawn in KEYS order."""
        rng = torch.Generator().manual_seed(seed)
        shapes = _expected_shapes(vocab_size, emb_dim, hidden_dim)
        return cls({k: torch.randn(shapes[k], generator=rng) for k in KEYS}, seq_len=seq_len)

    def _step(self, x_gates: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """One LSTM step from the precomputed input part x W + b (B, 4H); returns logits, h, c."""
        gates = x_gates + h @ self.w_h  # (B, 4H)
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return F.linear(h, self.w_out, self.b_out), h, c  # logits (B, V)

    def _input_table(self) -> torch.Tensor:
        return torch.addmm(self.b, self.emb, self.w_x)  # (V, 4H): x W + b for every token

    @torch.inference_mode()
    def sample(self, num: int, generator: torch.Generator | None = None, batch_size: int = 1000) -> torch.Tensor:
        """`num` free-running sequences (num, seq_len) of ids 0..V-1, by inverse-CDF multinomial draws.

        The uniforms come from `generator` on its own device, so a seed gives the same
        noise whatever device the oracle is on.
        """
        table = self._input_table()
        noise_device = generator.device if generator is not None else torch.device("cpu")
        out = []
        for start in range(0, num, batch_size):
            b = min(batch_size, num - start)
            u = torch.rand(b, self.seq_len, generator=generator, device=noise_device).to(table)  # (B, T)
            h = table.new_zeros(b, self.hidden_dim)
            c = torch.zeros_like(h)
            tok = torch.full((b,), START_TOKEN, dtype=torch.long, device=table.device)
            rows = []
            for t in range(self.seq_len):
                logits, h, c = self._step(table[tok], h, c)
                cdf = torch.softmax(logits, dim=1).cumsum_(dim=1)  # (B, V)
                target = u[:, t:t + 1] * cdf[:, -1:]  # (B, 1); scaled so rounding in the sum cannot overshoot
                tok = torch.searchsorted(cdf, target, right=True).squeeze(1).clamp_(max=self.vocab_size - 1)
                rows.append(tok)
            out.append(torch.stack(rows, dim=1))
        return torch.cat(out) if out else torch.empty(0, self.seq_len, dtype=torch.long, device=table.device)

    @torch.inference_mode()
    def log_prob(self, ids: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Teacher-forced log-likelihood (B,) float64 of each sequence; input at t is token t-1, START first."""
        if ids.dim() != 2:
            raise ValueError(f"ids must be (B, T), got shape {tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ValueError(f"ids must be oracle ids in 0..{self.vocab_size - 1}, "
                             f"got {int(ids.min())}..{int(ids.max())}")
        table = self._input_table()
        ids = ids.to(device=table.device, dtype=torch.long)
        out = []
        for start in range(0, ids.shape[0], batch_size):
            chunk = ids[start:start + batch_size]  # (B, T)
            b = chunk.shape[0]
            h = table.new_zeros(b, self.hidden_dim)
            c = torch.zeros_like(h)
            prev = torch.full((b,), START_TOKEN, dtype=torch.long, device=table.device)
            total = torch.zeros(b, dtype=torch.float64, device=table.device)
            for t in range(chunk.shape[1]):
                logits, h, c = self._step(table[prev], h, c)
                prev = chunk[:, t]
                total += torch.log_softmax(logits, dim=1).gather(1, prev[:, None]).squeeze(1).double()
            out.append(total)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64, device=table.device)

    def nll(self, ids: torch.Tensor, batch_size: int = 1000) -> float:
        """NLL_oracle: mean negative log-likelihood per token over all B*T tokens of `ids` (B, T)."""
        if ids.dim() != 2 or ids.numel() == 0:
            raise ValueError(f"ids must be a non-empty (B, T) tensor, got shape {tuple(ids.shape)}")
        return float(-self.log_prob(ids, batch_size=batch_size).sum() / ids.numel())
