"""The frame prior's token loop in C (vqaudio/prior/frame_loop.py) against the PyTorch one, and
what the PyTorch loop asks of the host."""

import collections

import pytest
import torch
from torch.overrides import TorchFunctionMode

from vqaudio.codes import token_levels
from vqaudio.controls.grid import NUM_CONTROLS
from vqaudio.generation import sample_tokens
from vqaudio.prior import frame_loop
from vqaudio.prior.sampling import Sampling, draw

from .conftest import tiny_prior
from .test_prior import random_tokens

needs_library = pytest.mark.skipif(
    frame_loop.library() is None, reason="the C sampler was not built (no C compiler)"
)


@pytest.fixture
def torch_only(monkeypatch):
    """Sampling in PyTorch alone, as without a C compiler."""
    monkeypatch.setenv("VQAUDIO_FAST_DEPTH", "0")
    frame_loop.library.cache_clear()
    yield
    monkeypatch.delenv("VQAUDIO_FAST_DEPTH")
    frame_loop.library.cache_clear()


def _sample(prior, prompt, **settings):
    # 20 frames, past the context
    return sample_tokens(prior, 60, prompt, Sampling(**settings), seed=5)


SETTINGS = [
    {},
    {"top_p": (0.5, 0.9), "exact_hold": True},
    {"top_k": (3, None), "temperature": 0.8},
    {"top_k": 5, "top_p": 0.7, "cache_scale": 0.5, "exact_hold": True},
    {"top_p": (0.6, 0.95), "exact_hold": True, "contrast": 0.7},
    {"exact_hold": True, "contrast": 1.2},  # no nucleus: the contrast alone splits the hold off
    {"exact_hold": True, "hold_cap": 0.3},  # the cap alone
    {"top_p": (0.8, 0.9), "exact_hold": True, "contrast": 0.3, "hold_cap": 0.5},
]


@needs_library
@pytest.mark.parametrize(
    ("settings", "code_counts"),
    [(s, c) for s in SETTINGS for c in (0, 2) if c or "cache_scale" not in s],  # needs counts
)
def test_c_sampling_draws_the_tokens_pytorch_draws(settings, code_counts, request):
    prior = tiny_prior("frames", code_counts=code_counts, context_blocks=6)
    prompt = random_tokens(prior.config, 2, batch=3)
    assert frame_loop.frame_loop(prior, Sampling()) is not None
    fast = _sample(prior, prompt, **settings)
    request.getfixturevalue("torch_only")
    assert frame_loop.frame_loop(prior, Sampling()) is None
    slow = _sample(prior, prompt, **settings)
    assert torch.equal(fast, slow)
    assert not torch.equal(fast[:, 6:], fast[:, 6:].roll(1, 0))  # the rows differ


@needs_library
def test_the_c_temporal_step_is_the_pytorch_one():
    prior = tiny_prior("frames", code_counts=2, context_blocks=6)
    tokens = random_tokens(prior.config, 4, batch=2)
    with torch.inference_mode():
        slow = prior.stream(tokens[:, :6])
        fast = prior.stream(tokens[:, :6])
        slow.frame.copy_(tokens[:, 6:9])
        fast.frame.copy_(tokens[:, 6:9])
        slow._frame_step(3)
        fast._frame_step(3, frame_loop.frame_loop(prior, Sampling()).temporal_step)
    torch.testing.assert_close(fast.temporal_cache, slow.temporal_cache)
    torch.testing.assert_close(fast.depth_bias, slow.depth_bias)


def test_draw_takes_the_first_id_whose_running_sum_passes_the_uniform():
    probs = torch.tensor([[0.0, 0.2, 0.0, 0.5, 0.3, 0.0]] * 5)
    uniform = torch.tensor([0.0, 0.19, 0.2, 0.71, 0.999999])
    assert draw(probs, uniform).tolist() == [1, 1, 3, 4, 4]  # never an id of probability 0
    assert draw(probs * 7, uniform).tolist() == [1, 1, 3, 4, 4]  # not necessarily normalised
    counts = torch.bincount(draw(probs[:1].expand(20000, -1), torch.rand(20000)), minlength=6)
    torch.testing.assert_close(counts / 20000, probs[0], atol=0.02, rtol=0)


def test_without_the_library_sampling_stays_in_pytorch(torch_only):
    prior = tiny_prior("frames", code_counts=2)
    assert frame_loop.library() is None and frame_loop.frame_loop(prior, Sampling()) is None
    tokens = sample_tokens(prior, 30, torch.zeros(1, 0, dtype=torch.long), seed=1)
    assert tokens.shape == (1, 30)


@needs_library
def test_other_priors_and_other_dtypes_stay_in_pytorch():
    assert frame_loop.frame_loop(tiny_prior("transformer"), Sampling()) is None
    assert frame_loop.frame_loop(tiny_prior("frames").double(), Sampling()) is None


@pytest.mark.parametrize(("dtype", "atol"), ((torch.bfloat16, 0.1), (torch.float16, 0.02)))
def test_half_precision_priors_sample_in_pytorch_and_the_stream_follows_the_window(dtype, atol):
    """The unigram cache's counts (float32) meet half-precision gates; the stream's logits stay
    within the dtype's rounding (logits ~2, 8 or 11 bits of mantissa) of the window's."""
    prior = tiny_prior("frames", code_counts=2, context_blocks=6).to(dtype)
    tokens = random_tokens(prior.config, 9)  # past the context: the window slides
    with torch.inference_mode():
        stream = prior.stream(tokens[:, :0])
        for t in range(tokens.shape[1]):
            expected = prior.next_logits(tokens[:, :t]).float()
            torch.testing.assert_close(stream.logits.float(), expected, atol=atol, rtol=0)
            stream.push(tokens[:, t])
    sampled = sample_tokens(prior, 30, tokens[:, :6], Sampling(top_p=0.9, exact_hold=True))
    levels = token_levels(prior.config.level_strides).repeat(12)
    assert torch.equal(sampled // prior.config.codebook_size, levels.expand_as(sampled))


class HostTraffic(TorchFunctionMode):
    """Counts the calls that would stall a GPU's queue: a device number read on the host, or a
    tensor made from host numbers or moved to a device (a host-to-device copy)."""

    READS = {"item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__"}
    MADE = {"tensor", "as_tensor", "new_tensor"}

    def __init__(self):
        super().__init__()
        self.calls = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        moved = name == "to" and any(
            isinstance(a, (str, torch.device)) for a in (*args[1:], *kwargs.values())
        )
        if name in self.READS or name in self.MADE or moved:
            self.calls[name] += 1
        return func(*args, **kwargs)


@pytest.mark.parametrize("guidance", (1.0, 2.0))
def test_the_pytorch_loop_asks_the_host_nothing_per_token(torch_only, guidance):
    """Past the setup, no step of the PyTorch loop (depth and temporal steps, window slides,
    the sampling rule with every setting, guidance) reads a device number on the host or sends
    the device host numbers: 24 tokens and 72 make the same host traffic."""
    prior = tiny_prior("frames", code_counts=2, context_blocks=6, controls=NUM_CONTROLS)
    prompt = random_tokens(prior.config, 2, batch=2)
    controls = torch.randn(2, 40, NUM_CONTROLS)
    sampling = Sampling(
        top_p=(0.6, 0.95), exact_hold=True, hold_cap=0.9, contrast=0.7, guidance=guidance
    )
    traffic = []
    for count in (24, 72):  # 72: past the context, so the window slides
        with HostTraffic() as seen:
            sample_tokens(prior, count, prompt, sampling, seed=1, controls=controls)
        traffic.append(seen.calls)
    assert traffic[0] == traffic[1]
