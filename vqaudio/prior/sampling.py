"""The sampling rule: logits -> token, and the one ``Sampling`` settings object.

Pure functions of logits and uniform numbers; they know no model. ``Sampling`` holds every
setting, checked once when it is made; ``SHIPPED`` is what ``vqaudio generate`` and
``vqaudio.generate`` use. The C frame loop (``frame_loop.py``) applies the same rule and draws
the same way, so both give the same tokens.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError

TopK = int | None | Sequence[int | None]
TopP = float | None | Sequence[float | None]


def _values(value, name: str) -> list:
    """A single value (None included) as a list of one; a sequence as a list."""
    if value is None or isinstance(value, (int, float)):
        return [value]
    values = list(value)
    if not values:
        raise ConfigError(f"{name}: give one value, or one per level")
    return values


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How tokens are drawn. The defaults are plain sampling from the prior as it is.

    ``top_k`` and ``top_p`` are one value for every level, or one per level (level 0 first; the
    last repeats). ``exact_hold``: at level 0, the code of the frame before keeps the prior's
    probability and top-k / top-p choose among the other codes, so a nucleus never makes a hold
    certain; ``hold_cap`` (with it) bounds that probability (1: none). ``contrast``: level 0
    draws from p(code | piece) / p(code | no context)^contrast (0: none). ``cache_scale``
    multiplies a frame prior's unigram-cache gates (1: as trained; it needs a prior with one);
    ``cache_by_chord`` f: the cache's whole-piece count keeps the codes played under other
    chords than the current one at weight 1 - f (0: as trained; 1: this chord's alone), so a
    piece recalls what it played under each chord and is not held to its first one; its recent
    count keeps them all (no effect without chords among the controls, or without a cache).
    ``guidance`` g: with controls, tokens are drawn from u + g (c - u), the logits with (c) and
    without (u) them (classifier-free guidance; 1: the controlled logits alone, and the C loop).
    ``control_scale`` s: the controls' terms are extrapolated from those of no controls by s
    (the controls enter linearly, so this is the controls times s; 1: as trained). Unlike
    guidance it costs nothing and keeps the C loop.
    """

    temperature: float = 1.0
    top_k: TopK = None
    top_p: TopP = None
    exact_hold: bool = False
    hold_cap: float = 1.0
    contrast: float = 0.0
    cache_scale: float = 1.0
    cache_by_chord: float = 0.0
    guidance: float = 1.0
    control_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("top_k", "top_p"):  # a list given becomes a tuple: the object stays frozen
            value = getattr(self, name)
            if not (value is None or isinstance(value, (int, float))):
                object.__setattr__(self, name, tuple(_values(value, name)))
        if not self.temperature > 0:
            raise ConfigError(f"temperature {self.temperature:g} must be > 0 (top_k=1: greedy)")
        for k in _values(self.top_k, "top_k"):
            if k is not None and k < 1:
                raise ConfigError(f"top_k {k} must be >= 1 (None: all codes)")
        for q in _values(self.top_p, "top_p"):
            if q is not None and not 0 < q <= 1:
                raise ConfigError(f"top_p {q:g} must be in (0, 1]")
        if not 0 < self.hold_cap <= 1:
            raise ConfigError(f"hold_cap {self.hold_cap:g} must be in (0, 1] (1: none)")
        if self.hold_cap < 1 and not self.exact_hold:
            raise ConfigError(f"hold_cap {self.hold_cap:g} caps the exact hold: turn exact_hold on")
        if not (self.contrast >= 0 and math.isfinite(self.contrast)):
            raise ConfigError(f"contrast {self.contrast:g} must be a number >= 0 (0: none)")
        if not (self.cache_scale >= 0 and math.isfinite(self.cache_scale)):
            raise ConfigError(f"cache_scale {self.cache_scale:g} must be a number >= 0")
        if not 0 <= self.cache_by_chord <= 1:
            raise ConfigError(f"cache_by_chord {self.cache_by_chord:g} must be in [0, 1] (0: off)")
        if not (0 <= self.guidance <= 10 and math.isfinite(self.guidance)):
            raise ConfigError(f"guidance {self.guidance:g} must be in [0, 10] (1: none)")
        if not (0 <= self.control_scale <= 10 and math.isfinite(self.control_scale)):
            raise ConfigError(
                f"control_scale {self.control_scale:g} must be in [0, 10] (1: as trained)"
            )

    def per_level(self, num_levels: int) -> tuple[list, list]:
        """(top_k, top_p) of each of ``num_levels`` levels, level 0 first."""

        def expand(value, name):
            values = _values(value, name)
            return (values + values[-1:] * num_levels)[:num_levels]

        return expand(self.top_k, "top_k"), expand(self.top_p, "top_p")


# The shipped defaults, measured on the shipped prior (docs/MODEL_CARD.md, Generation table).
SHIPPED = Sampling(
    temperature=0.95,  # level-0 code changes per second nearest real music's, no drones
    top_p=(0.8, 0.98),  # level 0: fewer wandering codes; finer levels: cut only the tail
    exact_hold=True,  # a plain nucleus at level 0 would make long holds certain
    hold_cap=0.9,  # a prior is surer of a long hold than real music bears out: ends drones
    contrast=0.0,  # a contrast gave more notes but silent holes
    control_scale=2.5,  # the asked tempo kept, at the C loop's speed (guidance needs PyTorch's)
    cache_by_chord=1.0,  # a cache over the whole piece held it to its first chord: drones
)


def _truncate(logits: Tensor, top_k: int | None, top_p: float | None) -> Tensor:
    """Logits (B, V) with all but the top-k, then all but the top-p nucleus, set to -inf."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = probs.cumsum(dim=-1) - probs > top_p  # mass before a token already exceeds top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return logits


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    held: Tensor | None = None,
    offset: Tensor | None = None,
    hold_cap: float = 1.0,
) -> Tensor:
    """Draw one token per row of logits (B, V) -> (B,) after temperature, ``offset`` (V,) added
    (the contrast), top-k, then top-p.

    With a list of B generators, row b draws from generator b alone. With ``held`` (B,) ids,
    each row's held id keeps its probability after the temperature (at most ``hold_cap``), and
    the offset, top-k and top-p choose among the other ids only.
    """
    probs = probabilities(logits, temperature, top_k, top_p, held, offset, hold_cap)
    return draw(probs, uniforms(generator, probs.shape[0], 1, probs.device)[:, 0])


def probabilities(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    held: Tensor | None = None,
    offset: Tensor | None = None,
    hold_cap: float = 1.0,
) -> Tensor:
    """The probabilities (B, V) that :func:`sample_next` draws from (its arguments). Device
    ops alone: nothing here waits for the device or sends the host's numbers to it."""
    logits = logits / temperature if temperature != 1.0 else logits
    truncating = (top_k is not None and top_k < logits.shape[-1]) or (
        top_p is not None and top_p < 1.0
    )
    shifted = logits if offset is None else logits + offset
    if held is None or not (truncating or offset is not None or hold_cap < 1):
        return torch.softmax(_truncate(shifted, top_k, top_p), dim=-1)
    held = held[:, None]
    p_held = torch.softmax(logits, dim=-1).gather(1, held).clamp(max=hold_cap)  # (B, 1)
    others = shifted.scatter(1, held, float("-inf"))
    probs = torch.softmax(_truncate(others, top_k, top_p), dim=-1) * (1 - p_held)
    return probs.scatter(1, held, p_held)


def uniforms(
    generator: torch.Generator | list[torch.Generator] | None, rows: int, count: int, device
) -> Tensor:
    """(rows, count) uniform numbers in [0, 1): row b from generator b where a list is given (so a
    row's draws do not depend on the other rows), else all from the one generator. A row's
    ``count`` numbers are those of ``count`` calls for one each (CPU generator)."""
    if isinstance(generator, list):
        return torch.stack([torch.rand(count, generator=g, device=device) for g in generator])
    return torch.rand(rows, count, generator=generator, device=device)


def draw(probs: Tensor, uniform: Tensor) -> Tensor:
    """The inverse-CDF draw: per row of probs (B, V) (not necessarily normalised), the first id
    whose running sum (in float64, in id order) exceeds ``uniform`` (B,) times the row's total.
    The C frame loop draws the same way."""
    cdf = probs.double().cumsum(-1)
    target = uniform.double() * cdf[:, -1]
    index = torch.searchsorted(cdf, target[:, None], right=True)[:, 0]  # ids whose sum <= target
    last = probs.shape[-1] - 1 - (probs.flip(-1) > 0).int().argmax(-1)  # the last possible id
    return torch.minimum(index, last)
