"""Vector quantization per the VQ-VAE objective, and the multi-scale (hierarchical) stack of it.

VectorQuantizer: nearest code by Euclidean distance (in an optional low-dim, optionally
L2-normalised space), straight-through gradient, codebook loss ||sg[z_e] - e||^2 that reaches only
the codebook and commitment loss beta ||z_e - sg[e]||^2 that reaches only the encoder. Options:
EMA codebook updates, k-means initialisation, dead-code restarts.

MultiScaleQuantizer: level k average-pools the residual by level_strides[k], quantizes it,
upsamples (repeat) and subtracts; coarse levels first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..codes import Codes
from ..config import CodecConfig
from ..layers import WNConv1d


@dataclass
class QuantizerOutput:
    z_q: Tensor  # (B, D, T) quantized latents, straight-through
    codes: Codes
    codebook_loss: Tensor  # scalar, summed over levels used (each item over the levels it keeps)
    commitment_loss: Tensor  # scalar, the same way (beta NOT applied)
    # per level, 0-dim tensors (reading them waits for the device; training reads them at log time)
    usage: list[Tensor]  # fraction of codes used in this batch
    perplexity: list[Tensor]  # exp(entropy) of this batch's code histogram


def _code_counts(codes: Tensor, codebook_size: int) -> Tensor:
    """(codebook_size,) float32 count of each code in ``codes``; bincount would wait for a GPU."""
    ones = torch.ones(codes.numel(), device=codes.device)
    return torch.zeros(codebook_size, device=codes.device).index_add_(0, codes.flatten(), ones)


def _kmeans(vectors: Tensor, k: int, iters: int = 10) -> Tensor:
    """k-means++ seeding, then Lloyd iterations; deterministic (fixed generator). The seeding
    draws one centre at a time, each from the distances so far: it runs on a CPU copy of
    ``vectors`` (one transfer, instead of a GPU round trip per centre), the iterations on theirs."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    on_device, vectors = vectors, vectors.cpu()
    first = int(torch.randint(len(vectors), (1,), generator=generator))
    centers = [vectors[first]]
    nearest = (vectors - vectors[first]).pow(2).sum(1)
    for _ in range(1, k):
        weights = nearest.double()
        if weights.sum() <= 0:  # fewer distinct vectors than codes: repeat them
            weights = torch.ones_like(weights)
        pick = int(torch.multinomial(weights, 1, generator=generator))
        centers.append(vectors[pick])
        nearest = torch.minimum(nearest, (vectors - vectors[pick]).pow(2).sum(1))
    vectors = on_device
    centers = torch.stack(centers).to(vectors.device, copy=True)
    for _ in range(iters):
        assign = torch.cdist(vectors, centers).argmin(dim=1)
        sums = torch.zeros_like(centers).index_add_(0, assign, vectors)
        counts = _code_counts(assign, k).unsqueeze(1)
        centers = torch.where(counts > 0, sums / counts.clamp(min=1), centers)
    return centers


class VectorQuantizer(nn.Module):
    """One codebook; ``encode(z) -> codes (B, T)`` and ``decode(codes) -> z_q (B, D, T)``."""

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        codebook_dim: int = 0,
        l2_normalize: bool = False,
        ema_decay: float = 0.0,
        kmeans_init: bool = False,
        dead_code_threshold: float = 0.0,
        normalize_values: bool = False,
    ):
        super().__init__()
        self.codebook_size = codebook_size
        self.l2_normalize = l2_normalize
        # True (vqaudio 0.1 checkpoints): z_q is the unit-norm code, so no level can follow the
        # residual's shrinking magnitude, and fine levels stop adding information (measured: the
        # residual energy grew 6x over 14 levels). False (DAC): L2 norms pick the code, the raw
        # code vector is the value.
        self.normalize_values = normalize_values and l2_normalize
        self.ema_decay = ema_decay
        self.dead_code_threshold = dead_code_threshold
        lookup_dim = codebook_dim or dim
        factorized = bool(codebook_dim) and codebook_dim != dim
        self.in_proj = WNConv1d(dim, lookup_dim, 1) if factorized else nn.Identity()
        self.out_proj = WNConv1d(lookup_dim, dim, 1) if factorized else nn.Identity()
        if factorized and not self.normalize_values:
            self._invert_projection()
        # init.normal_ (= randn): a loader's meta skeleton skips it (checkpoint._without_init)
        codebook = nn.init.normal_(torch.empty(codebook_size, lookup_dim))
        if ema_decay > 0:
            # EMA codebooks are running averages, not parameters (no codebook loss gradient).
            self.register_buffer("codebook", codebook)
            self.register_buffer("ema_count", torch.ones(codebook_size))
            self.register_buffer("ema_sum", codebook.clone())
        else:
            self.codebook = nn.Parameter(codebook)
        # EMA of each code's count per batch; zero until initialised (then a uniform share), so
        # with restarts on, codes of an uninitialised codebook are seeded from data at once
        self.register_buffer("usage_ema", torch.zeros(codebook_size))
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        self._seen_initialized = False  # the buffer read once True: a read waits for a GPU

    def _initialized(self) -> bool:
        if not self._seen_initialized:
            self._seen_initialized = bool(self.initialized)
        return self._seen_initialized

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._seen_initialized = False  # the loaded buffer may say otherwise

    def _normed(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) if self.l2_normalize else x

    def nearest(self, vectors: Tensor) -> Tensor:
        """Index of the nearest code (Euclidean, in the lookup space) for each row of (N, d)."""
        # always in float32: under bf16 autocast the nearest code would differ from inference's
        vectors, codebook = self._normed(vectors.float()), self._normed(self.codebook.float())
        distance = (
            vectors.pow(2).sum(1, keepdim=True)
            - 2 * vectors @ codebook.t()
            + codebook.pow(2).sum(1).unsqueeze(0)
        )
        return distance.argmin(dim=1)

    def encode(self, z: Tensor) -> Tensor:
        """z (B, D, T) -> codes (B, T)."""
        z_e = rearrange(self.in_proj(z), "b d t -> b t d")
        return self.nearest(z_e.reshape(-1, z_e.shape[-1])).view(z_e.shape[:2])

    def _values(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) if self.normalize_values else x

    def lookup(self, codes: Tensor) -> Tensor:
        """codes (B, T) -> code vectors (B, d, T) in the lookup space."""
        return rearrange(self._values(F.embedding(codes, self.codebook)), "b t d -> b d t")

    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, T) -> z_q (B, D, T)."""
        return self.out_proj(self.lookup(codes))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """z (B, D, T) -> (z_q, codes, codebook_loss (B,), commitment_loss (B,)): the losses are
        per item, so a caller can leave out the items that drop this level."""
        z = z.float()
        if self.training and not self._initialized():
            self._center_projection(z.detach())
        z_e = self._values(rearrange(self.in_proj(z), "b d t -> b t d"))
        flat = z_e.reshape(-1, z_e.shape[-1])
        if self.training and not self._initialized():
            self._kmeans_init(flat.detach())
        codes = self.nearest(flat)  # by cosine similarity when l2_normalize
        e = self._values(F.embedding(codes, self.codebook)).view_as(z_e)
        # ||sg[z_e] - e||^2 reaches only the codebook; ||z_e - sg[e]||^2 only the encoder
        codebook_loss = (e - z_e.detach()).pow(2).mean(dim=(1, 2))
        commitment_loss = (z_e - e.detach()).pow(2).mean(dim=(1, 2))
        if self.training:
            self._update_codebook(flat.detach(), codes)
        z_q = z_e + (e - z_e).detach()  # noop in forward, straight-through gradient in backward
        z_q = self.out_proj(rearrange(z_q, "b t d -> b d t"))
        return z_q, codes.view(z_e.shape[:2]), codebook_loss, commitment_loss

    @torch.no_grad()
    def _invert_projection(self) -> None:
        """Start out_proj as the pseudo-inverse of in_proj: out_proj(in_proj(r)) is then the part
        of r in in_proj's row space, so each level removes that part of the residual. With two
        independent random maps every level adds as much energy as it removes, and the residual
        of a fresh 14-level stack grows ~300x (measured)."""
        inverse = torch.linalg.pinv(self.in_proj.weight.squeeze(-1)).unsqueeze(-1)  # (D, d, 1)
        # weight norm: weight = g * v / ||v||; copy into the existing tensors (DDP holds them)
        weights = self.out_proj.parametrizations.weight
        weights.original0.copy_(inverse.norm(dim=(1, 2), keepdim=True))
        weights.original1.copy_(inverse)
        self.out_proj.bias.copy_(-(inverse.squeeze(-1) @ self.in_proj.bias))

    @torch.no_grad()
    def _center_projection(self, z: Tensor) -> None:
        """Data-dependent init: shift the projection's bias so the first batch's projected latents
        are zero-mean. A fresh encoder's output is mostly a constant offset (Snake adds a positive
        one at every layer); without this, L2-normalised lookups see nearly one direction."""
        if isinstance(self.in_proj, nn.Identity):
            return
        mean = self.in_proj(z).mean(dim=(0, 2))
        self.in_proj.bias.sub_(mean)
        if not self.normalize_values:
            self._invert_projection()

    @torch.no_grad()
    def _kmeans_init(self, flat: Tensor, batch_vectors: int | None = None) -> None:
        """Codebook := k-means centres of ``flat``; usage starts at a uniform share of a batch of
        ``batch_vectors`` (default len(flat)), so no code looks dead at the first update."""
        flat = flat.float()
        centers = _kmeans(flat, self.codebook_size)
        self.codebook.data.copy_(centers)
        if self.ema_decay > 0:
            self.ema_sum.copy_(centers)
            self.ema_count.fill_(1.0)
        self.usage_ema.fill_((batch_vectors or len(flat)) / self.codebook_size)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update_codebook(self, flat: Tensor, codes: Tensor) -> None:
        flat = flat.float()
        counts = _code_counts(codes, self.codebook_size)
        sums = None
        if self.ema_decay > 0:
            sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, flat)
        if _distributed():  # every rank's statistics, so all ranks keep one codebook
            dist.all_reduce(counts)
            if sums is not None:
                dist.all_reduce(sums)
        self.usage_ema.mul_(0.99).add_(counts, alpha=0.01)
        if self.ema_decay > 0:
            self.ema_count.mul_(self.ema_decay).add_(counts, alpha=1 - self.ema_decay)
            self.ema_sum.mul_(self.ema_decay).add_(sums, alpha=1 - self.ema_decay)
            total = self.ema_count.sum()
            smoothed = (self.ema_count + 1e-5) / (total + self.codebook_size * 1e-5) * total
            self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        if self.dead_code_threshold > 0:
            self.restart_dead_codes(flat, counts.sum().double())
            if _distributed():
                # rank 0's restarts (from its own batch) become every rank's
                buffers = [self.codebook.data, self.usage_ema]
                if self.ema_decay > 0:
                    buffers += [self.ema_sum, self.ema_count]
                for buffer in buffers:
                    dist.broadcast(buffer, src=0)

    @torch.no_grad()
    def restart_dead_codes(self, flat: Tensor, batch_vectors: float | Tensor | None = None) -> int:
        """Replace codes used less than ``dead_code_threshold`` x a uniform share of a batch
        (EMA over batches) by random vectors of this batch; returns how many were restarted.
        ``batch_vectors``: vectors in the whole batch (all ranks; default len(flat)); a tensor
        keeps the count on the device (the restart still waits for it, to find the dead)."""
        uniform = (len(flat) if batch_vectors is None else batch_vectors) / self.codebook_size
        dead = torch.nonzero(self.usage_ema < self.dead_code_threshold * uniform).squeeze(1)
        dead = dead[: len(flat)]  # no more restarts than there are fresh vectors
        if len(dead) == 0:
            return 0
        pick = torch.randperm(len(flat), device=flat.device)[: len(dead)]
        self.codebook.data[dead] = flat[pick].to(self.codebook.dtype)
        if self.ema_decay > 0:
            self.ema_sum[dead] = flat[pick]
            self.ema_count[dead] = 1.0
        # a uniform share: a grace period before the next check
        self.usage_ema[dead] = torch.as_tensor(
            uniform, dtype=self.usage_ema.dtype, device=flat.device
        )
        return len(dead)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class MultiScaleQuantizer(nn.Module):
    """Coarse -> fine levels; level k quantizes the residual average-pooled by level_strides[k]."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.config = config
        self.levels = nn.ModuleList(
            VectorQuantizer(
                config.latent_dim,
                config.codebook_size,
                config.codebook_dim,
                config.l2_normalize,
                config.ema_decay,
                config.kmeans_init,
                config.dead_code_threshold,
                config.normalize_values,
            )
            for _ in config.level_strides
        )

    @staticmethod
    def _pool(x: Tensor, stride: int) -> Tensor:
        return F.avg_pool1d(x, stride) if stride > 1 else x

    @staticmethod
    def _upsample(x: Tensor, stride: int) -> Tensor:
        return x.repeat_interleave(stride, dim=-1) if stride > 1 else x

    def forward(
        self, z: Tensor, num_levels: int | None = None, keep: Tensor | None = None
    ) -> QuantizerOutput:
        """z (B, D, T) with T a multiple of level_strides[0]; uses the first ``num_levels`` levels.

        ``keep`` (B,) optionally gives each item its own number of levels (quantizer dropout):
        every level quantizes the true residual of the levels before it (as encode does), and
        levels at or past ``keep[b]`` add nothing to item b's z_q nor to its losses.
        """
        num_levels = num_levels or len(self.levels)
        strides = self.config.level_strides[:num_levels]
        with torch.autocast(z.device.type, enabled=False):  # codes are chosen in float32
            z = z.float()
            residual, z_q = z, torch.zeros_like(z)
            codebook_loss = commitment_loss = z.new_zeros(())
            codes, usage, perplexity = [], [], []
            for k, (vq, stride) in enumerate(zip(self.levels[:num_levels], strides)):
                q, c, cb, cm = vq(self._pool(residual, stride))
                q = self._upsample(q, stride)
                residual = residual - q
                if keep is None:
                    z_q = z_q + q
                    codebook_loss, commitment_loss = (
                        codebook_loss + cb.mean(),
                        commitment_loss + cm.mean(),
                    )
                else:
                    mask = (keep > k).to(q.dtype)
                    z_q = z_q + q * mask.view(-1, 1, 1)
                    codebook_loss = codebook_loss + (cb * mask).mean()
                    commitment_loss = commitment_loss + (cm * mask).mean()
                codes.append(c)
                hist = _code_counts(c, vq.codebook_size)
                probs = hist / hist.sum()
                usage.append((hist > 0).float().mean())
                perplexity.append(torch.exp(-(probs * torch.log(probs + 1e-10)).sum()))
        return QuantizerOutput(
            z_q, Codes(codes, strides), codebook_loss, commitment_loss, usage, perplexity
        )

    @torch.no_grad()
    def initialize(self, z: Tensor, batch_frames: int | None = None) -> list[int]:
        """k-means initialisation of every level from a large latent z (B, D, T), coarse to fine:
        level k is seeded on the residual the levels before it leave. ``batch_frames``: latent
        frames of one training batch (usage then starts at a uniform share of it). Returns the
        number of vectors each level was seeded from."""
        residual, seen = z.float(), []
        for vq, stride in zip(self.levels, self.config.level_strides):
            pooled = self._pool(residual, stride)
            flat = rearrange(vq.in_proj(pooled), "b d t -> (b t) d")
            per_batch = None if batch_frames is None else max(1, batch_frames // stride)
            vq._kmeans_init(vq._values(flat), per_batch)
            seen.append(len(flat))
            residual = residual - self._upsample(vq.decode(vq.encode(pooled)), stride)
        return seen

    def encode(self, z: Tensor, num_levels: int | None = None) -> Codes:
        """z (B, D, T) -> Codes of the first ``num_levels`` levels (inference; no state changes)."""
        num_levels = num_levels or len(self.levels)
        strides = self.config.level_strides[:num_levels]
        residual, codes = z.float(), []
        for vq, stride in zip(self.levels[:num_levels], strides):
            c = vq.encode(self._pool(residual, stride))
            residual = residual - self._upsample(vq.decode(c), stride)
            codes.append(c)
        return Codes(codes, strides)

    def decode(self, codes: Codes) -> Tensor:
        """Codes (any prefix of the levels) -> z_q (B, D, num_frames)."""
        z_q = 0
        for vq, c, stride in zip(self.levels, codes.levels, codes.strides):
            z_q = z_q + self._upsample(vq.decode(c), stride)
        return z_q
