"""Priors: causality, cached/incremental == full forward, level masks, seeds, windows, prompts."""

import math

import pytest
import torch

from vqaudio.codec import Codec
from vqaudio.codec.io import save_codec
from vqaudio.codes import Codes, token_levels
from vqaudio.config import PriorConfig
from vqaudio.errors import AudioError, CheckpointError, ConfigError
from vqaudio.generation import contrast_offsets, decode_codes, generate, sample_tokens
from vqaudio.prior import load_prior, save_prior
from vqaudio.prior.frames import code_counts
from vqaudio.prior.likelihood import bits_per_second, bits_per_token, tokens_per_second
from vqaudio.prior.sampling import Sampling, sample_next

from .conftest import harmonic, tiny_codec_config, tiny_prior

KINDS = ("transformer", "frames", "wavenet")


def random_tokens(config: PriorConfig, num_blocks: int, batch: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    levels = token_levels(config.level_strides).repeat(num_blocks)
    codes = torch.randint(0, config.codebook_size, (batch, len(levels)), generator=gen)
    return codes + levels * config.codebook_size


@pytest.mark.parametrize("kind", KINDS)
def test_causal_changing_a_token_leaves_earlier_logits_unchanged(kind):
    prior = tiny_prior(kind)
    tokens = random_tokens(prior.config, 4)
    logits = prior(tokens)
    for t in (0, 5, 10):
        changed = tokens.clone()
        changed[:, t + 1] = tokens[:, t + 1] + (1 if tokens[0, t + 1] % 16 < 15 else -1)
        other = prior(changed)
        torch.testing.assert_close(other[:, : t + 1], logits[:, : t + 1])
        assert not torch.allclose(other[:, t + 1 :], logits[:, t + 1 :])


@pytest.mark.parametrize("kind", KINDS)
def test_logits_outside_the_next_level_are_masked(kind):
    prior = tiny_prior(kind)
    config = prior.config
    logits = prior(random_tokens(config, 3))
    levels = token_levels(config.level_strides).repeat(4)[1:10]  # level of token t + 1
    ids = torch.arange(config.vocab_size) // config.codebook_size
    valid = ids[None, :] == levels[:, None]  # (N, V)
    assert torch.isfinite(logits[:, valid]).all()
    assert torch.isneginf(logits[:, ~valid]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_loss_is_the_cross_entropy_of_every_token_including_the_first(kind):
    prior = tiny_prior(kind)
    tokens = random_tokens(prior.config, 3)
    logits = prior.window_logits(tokens)  # (B, N + 1, V), position 0 = start token
    assert logits.shape == (2, tokens.shape[1] + 1, prior.config.vocab_size)
    torch.testing.assert_close(logits[:, 1:], prior(tokens))
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, tokens[..., None])
    torch.testing.assert_close(prior.loss(tokens), -logp.mean())
    bits = bits_per_token(prior, tokens)
    assert bits == pytest.approx(prior.loss(tokens).item() / math.log(2), rel=1e-5)
    assert bits_per_second(prior, tokens, 150.0) == pytest.approx(150.0 * bits, rel=1e-6)
    assert tokens_per_second(24000, 480, (4, 4, 2, 1, 1)) == 150.0


@pytest.mark.parametrize(
    ("kind", "extra"),
    (("transformer", {}), ("frames", {}), ("frames", {"code_counts": 2})),
)
@pytest.mark.parametrize("prompt", (0, 3, 4))
def test_kv_cache_equals_full_forward_through_window_slides(kind, extra, prompt):
    prior = tiny_prior(kind, **extra)
    tokens = random_tokens(prior.config, 11)  # 33 tokens; context is 12, so the window slides
    with torch.inference_mode():
        stream = prior.stream(tokens[:, :prompt])
        for t in range(prompt, tokens.shape[1]):
            if t < prior.config.context_tokens:  # before the first slide: one plain forward
                full = prior.window_logits(tokens[:, :t])[:, -1]
                torch.testing.assert_close(stream.logits, full)
            torch.testing.assert_close(stream.logits, prior.next_logits(tokens[:, :t]))
            stream.push(tokens[:, t])
    assert prior.window_start(tokens.shape[1]) > 0  # the slide really happened


@pytest.mark.parametrize("code_counts", (0, 2))
def test_frame_prior_scores_each_level_over_its_own_codebook(code_counts):
    prior = tiny_prior("frames", context_blocks=6, code_counts=code_counts)
    tokens = random_tokens(prior.config, 6)
    logits = prior.window_logits(tokens)[:, :-1]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, tokens[..., None])[..., 0]
    torch.testing.assert_close(prior.token_nll(tokens), -logp)  # the fast path == the full one
    changed = tokens.clone()
    changed[:, 7] = tokens[:, 7] + (1 if tokens[0, 7] % 16 < 15 else -1)  # frame 2, slot 1
    nll, other = prior.token_nll(tokens), prior.token_nll(changed)
    torch.testing.assert_close(other[:, :7], nll[:, :7])  # earlier slots and frames unchanged
    assert not torch.allclose(other[:, 8:9], nll[:, 8:9])  # the depth sees the frame's tokens
    assert not torch.allclose(other[:, 9:], nll[:, 9:])  # the temporal sees earlier frames


def test_an_own_context_changes_only_what_later_frames_see():
    prior = tiny_prior("frames", context_blocks=6, code_counts=2)
    per_block = prior.tokens_per_block
    tokens = random_tokens(prior.config, 6)
    torch.testing.assert_close(prior.token_nll(tokens, tokens), prior.token_nll(tokens))
    context = tokens.clone()
    context[:, 2 * per_block : 3 * per_block] = random_tokens(prior.config, 1, seed=1)
    nll, own = prior.token_nll(tokens), prior.token_nll(tokens, context)
    # frames 0-2 are predicted from frames before frame 2: a context frame changes none of them,
    # not even frame 2's own tokens, which see the real tokens earlier in their frame
    torch.testing.assert_close(own[:, : 3 * per_block], nll[:, : 3 * per_block])
    assert not torch.allclose(own[:, 3 * per_block :], nll[:, 3 * per_block :])


def test_own_frames_are_whole_frames_of_the_prior_own_draws_at_the_given_share():
    prior = tiny_prior("frames", context_blocks=40, code_counts=2)
    per_block = prior.tokens_per_block
    tokens = random_tokens(prior.config, 40, batch=4)
    frames = tokens.view(4, 40, per_block)
    assert torch.equal(prior.own_frames(tokens, 0.0), tokens)
    gen = torch.Generator().manual_seed(3)
    drawn = prior.own_frames(tokens, 1.0, gen).view_as(frames)
    levels = token_levels(prior.config.level_strides)
    assert torch.equal(drawn // prior.config.codebook_size, levels.expand_as(drawn))
    assert (drawn != frames).float().mean() > 0.5  # drawn, not copied (16 codes per level)
    again = prior.own_frames(tokens, 1.0, torch.Generator().manual_seed(3)).view_as(frames)
    assert torch.equal(again, drawn)  # seeded
    mixed = prior.own_frames(tokens, 0.5, torch.Generator().manual_seed(4)).view_as(frames)
    kept = (mixed == frames).all(dim=2)  # a frame is kept whole, or drawn whole
    changed = (mixed != frames).any(dim=2)
    assert 0.25 < kept.float().mean() < 0.75
    assert torch.equal(kept, ~changed)
    prior.train()
    loss = prior.own_context_loss(tokens, 0.5)
    loss.backward()
    assert prior.training and math.isfinite(float(loss.detach()))
    assert prior.frame_in.weight.grad.abs().sum() > 0  # the mixed context reaches the gradient


def test_own_frames_come_in_runs_of_span_and_later_passes_draw_from_the_mixed_frames():
    prior = tiny_prior("frames", context_blocks=40, code_counts=2)
    per_block = prior.tokens_per_block
    tokens = random_tokens(prior.config, 40, batch=4)
    frames = tokens.view(4, 40, per_block)

    def own(passes: int, span: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(5)
        return prior.own_frames(tokens, 0.5, gen, passes=passes, span=span).view_as(frames)

    once, twice = own(1, 4), own(2, 4)
    drawn = (once != frames).any(dim=2)  # (B, 40): which frames are the prior's
    runs = drawn.view(4, 10, 4)
    assert torch.equal(runs.all(dim=2), runs.any(dim=2))  # a coin per run of 4 frames
    assert 0.2 < drawn.float().mean() < 0.8
    assert torch.equal((twice != frames).any(dim=2), drawn)  # the same coins on every pass
    # the second pass draws again, given the first pass's mixed frames: the first drawn frame
    # of the window sees only real frames before it, so its draws differ only by the generator,
    # while the frames after a drawn frame see other context than in the first pass
    assert (twice[drawn] != once[drawn]).float().mean() > 0.3
    # passes draw given the mixed context: a pass given real frames only would equal a
    # re-seeded first pass, which it does not
    third = own(3, 4)
    assert torch.equal((third != frames).any(dim=2), drawn)
    assert not torch.equal(third, twice)
    # a whole-window span draws every frame or none
    whole = (own(1, 40) != frames).any(dim=2)
    assert torch.equal(whole.all(dim=1), whole.any(dim=1))
    prior.train()
    loss = prior.own_context_loss(tokens, 0.5, passes=2, span=4)
    loss.backward()
    assert prior.training and math.isfinite(float(loss.detach()))


def test_the_rollout_sees_its_own_earlier_draws():
    """Pass 2 of own_frames must draw given pass 1's mixed frames, not the real ones: with a
    prior that copies the code one frame earlier, a pass-2 draw equals the pass-1 draw before it."""
    prior = tiny_prior("frames", context_blocks=8, code_counts=0)
    with torch.no_grad():
        for param in prior.parameters():
            param.zero_()
        prior.copy_gate.bias.fill_(60.0)  # the code one frame earlier wins every draw
    per_block = prior.tokens_per_block
    tokens = random_tokens(prior.config, 8, batch=2)
    frames = tokens.view(2, 8, per_block)
    gen = torch.Generator().manual_seed(0)
    once = prior.own_frames(tokens, 1.0, gen, passes=1).view_as(frames)
    torch.testing.assert_close(once[:, 1:], frames[:, :-1], rtol=0, atol=0)  # copies the real
    gen = torch.Generator().manual_seed(0)
    twice = prior.own_frames(tokens, 1.0, gen, passes=2).view_as(frames)
    # pass 2 copies pass 1's frame, which copied the real one two frames earlier
    torch.testing.assert_close(twice[:, 2:], frames[:, :-2], rtol=0, atol=0)


def test_own_context_is_a_share():
    with pytest.raises(ConfigError, match="own_context"):
        from vqaudio.recipe import TrainConfig

        TrainConfig(own_context=1.5)


def test_code_counts_count_each_id_in_earlier_frames_and_in_the_recent_ones():
    frames = torch.tensor([[[0, 5], [0, 6], [5, 5], [1, 6]]])  # (B=1, F=4, P=2)
    counts = code_counts(frames, vocab_size=8, recent=2)  # (1, 4, 2, 8)
    assert counts.shape == (1, 4, 2, 8)
    assert counts[0, 0].sum() == 0  # nothing before the first frame
    assert counts[0, 3, 0].tolist() == [2, 0, 0, 0, 0, 3, 1, 0]  # frames 0..2
    assert counts[0, 3, 1].tolist() == [1, 0, 0, 0, 0, 2, 1, 0]  # frames 1..2 only


def test_code_counts_raise_the_codes_the_window_has_used():
    """With the cache's gates on (their initial values) and everything else equal, a code that
    fills the window's earlier frames gains probability; without code_counts it does not."""
    config = dict(context_blocks=6)
    plain, counted = tiny_prior("frames", **config), tiny_prior("frames", code_counts=3, **config)
    counted.load_state_dict(plain.state_dict(), strict=False)  # same weights but the gates
    with torch.no_grad():
        counted.count_gate.weight.zero_()
        counted.count_gate.bias.fill_(1.0)
    repeated = torch.tensor([[3, 16 + 7, 16 + 7]] * 5).reshape(1, -1)  # level-0 code 3, 5 frames
    for prior, gains in ((plain, False), (counted, True)):
        with torch.inference_mode():
            nll = prior.token_nll(repeated).view(5, 3)
            alone = plain.token_nll(repeated).view(5, 3)
        gained = (nll[1:] < alone[1:] - 1e-4).all().item()
        assert gained == gains
    torch.testing.assert_close(  # the first frame has no earlier frame to count
        counted.token_nll(repeated)[:, :3], plain.token_nll(repeated)[:, :3]
    )


def test_cache_scale_weighs_the_unigram_cache_and_cached_sampling_follows_it():
    """cache_scale 0 removes the cache's pull (the logits of the same weights without the cache's
    term), 1 leaves the trained logits, and the stream agrees with the full recompute at any scale
    through a window slide."""
    prior = tiny_prior("frames", code_counts=3, context_blocks=6)
    with torch.no_grad():
        prior.count_gate.weight.zero_()
        prior.count_gate.bias.fill_(1.0)
    repeated = torch.tensor([[3, 16 + 7, 16 + 7]] * 5).reshape(1, -1)
    with torch.inference_mode():
        trained = prior.window_logits(repeated)
        assert torch.equal(prior.window_logits(repeated, cache_scale=1.0), trained)
        off = prior.window_logits(repeated, cache_scale=0.0)
        half = prior.window_logits(repeated, cache_scale=0.5)
        prior.count_gate.bias.fill_(0.0)  # the same prior with the cache's gates shut
        torch.testing.assert_close(off, prior.window_logits(repeated))
        prior.count_gate.bias.fill_(1.0)
    code = 3  # level 0's repeated code: the cache pulls it up, by half as much at half the scale
    # the last row predicts the next frame's level 0, after 5 frames of code 3
    pull, half_pull = trained[0, -1, code] - off[0, -1, code], half[0, -1, code] - off[0, -1, code]
    assert pull > 0.5
    torch.testing.assert_close(half_pull, pull / 2)
    prompt = random_tokens(prior.config, 2, batch=2)
    for scale in (0.0, 0.5):
        cached = sample_tokens(prior, 36, prompt, Sampling(cache_scale=scale), seed=3)
        uncached = sample_tokens(
            prior, 36, prompt, Sampling(cache_scale=scale), seed=3, use_cache=False
        )
        assert torch.equal(cached, uncached)
    assert not torch.equal(
        sample_tokens(prior, 36, prompt, Sampling(cache_scale=0.0), seed=3),
        sample_tokens(prior, 36, prompt, seed=3),
    )


def test_the_stream_at_a_cache_scale_equals_the_full_recompute_through_window_slides():
    prior = tiny_prior("frames", code_counts=2, context_blocks=6)
    tokens = random_tokens(prior.config, 9)  # 27 tokens; context is 18, so the window slides
    with torch.inference_mode():
        stream = prior.stream(tokens[:, :2], cache_scale=0.5)
        for t in range(2, tokens.shape[1]):
            expected = prior.next_logits(tokens[:, :t], cache_scale=0.5)
            torch.testing.assert_close(stream.logits, expected)
            stream.push(tokens[:, t])
    assert prior.window_start(tokens.shape[1]) > 0


@pytest.mark.parametrize("kind", KINDS)
def test_cache_scale_is_refused_where_there_is_no_cache(kind):
    prior = tiny_prior(kind)
    start = torch.zeros(1, 0, dtype=torch.long)
    with pytest.raises(ConfigError, match="code_counts"):
        sample_tokens(prior, 3, start, Sampling(cache_scale=0.5))
    with pytest.raises(ConfigError, match=">= 0"):
        sample_tokens(tiny_prior("frames", code_counts=2), 3, start, Sampling(cache_scale=-1.0))
    assert sample_tokens(prior, 3, start, Sampling(cache_scale=1.0)).shape == (1, 3)


def test_window_slides_keep_whole_blocks():
    prior = tiny_prior("transformer", context_blocks=6)
    block, context = prior.config.tokens_per_block, prior.config.context_tokens
    starts = [prior.window_start(n) for n in range(0, 5 * context)]
    assert all(s % block == 0 for s in starts)
    assert all(
        1 <= n - s <= context for n, s in zip(range(1, 5 * context), starts[1:], strict=True)
    )
    assert starts[context] == 3 * block  # a full window keeps its latest half


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_wavenet_incremental_equals_full_convolution(kernel_size):
    prior = tiny_prior("wavenet", kernel_size=kernel_size)
    tokens = random_tokens(prior.config, 12)  # 36 tokens, past the receptive field
    assert prior.config.receptive_field < tokens.shape[1]
    full = prior(tokens)
    with torch.inference_mode():
        stream = prior.stream(tokens[:, :2])
        for t in range(2, tokens.shape[1]):
            torch.testing.assert_close(stream.logits, full[:, t - 1])
            torch.testing.assert_close(stream.logits, prior.next_logits(tokens[:, :t]))
            stream.push(tokens[:, t])


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_tokens_different_seed_different(kind):
    prior = tiny_prior(kind)
    prompt = torch.zeros(3, 0, dtype=torch.long)
    a = sample_tokens(prior, 30, prompt, seed=1)
    b = sample_tokens(prior, 30, prompt, seed=1)
    c = sample_tokens(prior, 30, prompt, seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # the n samples of one batch differ
    level = token_levels(prior.config.level_strides).repeat(10)
    assert torch.equal(a // prior.config.codebook_size, level.expand_as(a))  # always decodable


@pytest.mark.parametrize(
    ("kind", "extra"), [(k, {}) for k in KINDS] + [("frames", {"code_counts": 2})]
)
def test_sample_i_of_a_batch_is_the_sample_of_seed_plus_i_alone(kind, extra):
    prior = tiny_prior(kind, **extra)
    batch = sample_tokens(prior, 30, torch.zeros(3, 0, dtype=torch.long), seed=7)
    for i in range(3):
        alone = sample_tokens(prior, 30, torch.zeros(1, 0, dtype=torch.long), seed=7 + i)
        assert torch.equal(batch[i], alone[0]), f"sample {i} of the batch is not seed {7 + i}'s"


@pytest.mark.parametrize(
    ("kind", "extra"), [(k, {}) for k in KINDS] + [("frames", {"code_counts": 2})]
)
def test_cached_and_uncached_sampling_agree(kind, extra):
    prior = tiny_prior(kind, **extra)
    prompt = random_tokens(prior.config, 2, batch=2)
    cached = sample_tokens(prior, 36, prompt, seed=3, use_cache=True)  # beyond the context
    uncached = sample_tokens(prior, 36, prompt, seed=3, use_cache=False)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[:, :6], prompt)


@pytest.mark.parametrize("kind", KINDS)
def test_top_k_and_top_p_per_level(kind):
    """A sequence sets each level (level 0 first, the last repeating): greedy at level 0 alone
    draws the same first level-0 code for every seed, the argmax of the prior's first logits,
    while the finer levels still differ between seeds."""
    prior = tiny_prior(kind)
    start = torch.zeros(1, 0, dtype=torch.long)
    levels = token_levels(prior.config.level_strides).repeat(4)
    draws = [
        sample_tokens(prior, len(levels), start, Sampling(top_k=(1, None)), seed=s)[0]
        for s in range(6)
    ]
    with torch.inference_mode():
        first = int(prior.next_logits(start).argmax())
    assert all(int(d[0]) == first for d in draws)
    assert len({tuple(d[levels > 0].tolist()) for d in draws}) > 1
    # the same draws as one value for every level where the sequence repeats it
    torch.testing.assert_close(
        sample_tokens(prior, 24, start, Sampling(top_p=(0.9,)), seed=2),
        sample_tokens(prior, 24, start, Sampling(top_p=0.9), seed=2),
    )
    for bad in ((1.0, 0.0), (0.9, 1.5)):
        with pytest.raises(ConfigError, match="top_p"):
            sample_tokens(prior, 3, start, Sampling(top_p=bad))
    with pytest.raises(ConfigError, match="top_k"):
        sample_tokens(prior, 3, start, Sampling(top_k=(5, 0)))


def test_a_held_id_keeps_its_probability_and_the_nucleus_chooses_among_the_others():
    """p = (0.9, 0.06, 0.03, 0.01): a nucleus of 0.5 alone leaves only id 0, a certain hold. With
    id 0 held, it keeps 0.9 and the nucleus of the others, (0.6, 0.3, 0.1), keeps id 1 alone."""
    logits = torch.log(torch.tensor([[0.9, 0.06, 0.03, 0.01]])).repeat(4000, 1)
    gen = torch.Generator().manual_seed(0)
    assert set(sample_next(logits, top_p=0.5, generator=gen).tolist()) == {0}
    held = torch.zeros(4000, dtype=torch.long)
    draws = sample_next(logits, top_p=0.5, generator=gen, held=held)
    assert set(draws.tolist()) == {0, 1}
    assert 0.08 < (draws == 1).float().mean() < 0.12
    # nothing truncated: the held id changes nothing, draw for draw
    a = sample_next(logits, generator=torch.Generator().manual_seed(1))
    b = sample_next(logits, generator=torch.Generator().manual_seed(1), held=held)
    assert torch.equal(a, b)


def test_an_offset_reweighs_the_other_ids_and_leaves_the_held_ones_probability():
    """p = (0.5, 0.3, 0.15, 0.05), id 0 held: an offset of log(1 / p) (a contrast of 1) keeps the
    hold at 0.5 and spreads the rest evenly over ids 1-3; unheld, it makes every id equally
    likely."""
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits, offset = torch.log(p).repeat(6000, 1), -torch.log(p)
    gen = torch.Generator().manual_seed(0)
    held = torch.zeros(6000, dtype=torch.long)
    draws = sample_next(logits, generator=gen, held=held, offset=offset)
    shares = torch.bincount(draws, minlength=4) / 6000.0
    torch.testing.assert_close(shares, torch.tensor([0.5, 1 / 6, 1 / 6, 1 / 6]), atol=0.02, rtol=0)
    shares = torch.bincount(sample_next(logits, generator=gen, offset=offset), minlength=4) / 6000
    torch.testing.assert_close(shares, torch.full((4,), 0.25), atol=0.02, rtol=0)


def test_a_hold_cap_bounds_the_held_ids_probability_and_gives_the_rest_to_the_others():
    """p = (0.9, 0.06, 0.03, 0.01), id 0 held, capped at 0.5: id 0 keeps 0.5, the others share
    the other half as the prior weighs them (0.3, 0.15, 0.05); a cap above 0.9 changes nothing."""
    logits = torch.log(torch.tensor([[0.9, 0.06, 0.03, 0.01]])).repeat(8000, 1)
    held = torch.zeros(8000, dtype=torch.long)
    draws = sample_next(logits, generator=torch.Generator().manual_seed(0), held=held, hold_cap=0.5)
    shares = torch.bincount(draws, minlength=4) / 8000.0
    torch.testing.assert_close(shares, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.02, rtol=0)
    loose = sample_next(
        logits, generator=torch.Generator().manual_seed(1), held=held, hold_cap=0.95
    )
    plain = sample_next(logits, generator=torch.Generator().manual_seed(1))
    assert torch.equal(loose, plain)
    prior, start = tiny_prior("frames"), torch.zeros(1, 0, dtype=torch.long)
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="hold_cap"):
            sample_tokens(prior, 3, start, Sampling(exact_hold=True, hold_cap=bad))
    with pytest.raises(ConfigError, match="exact_hold"):
        sample_tokens(prior, 3, start, Sampling(hold_cap=0.9))


@pytest.mark.parametrize("kind", KINDS)
def test_exact_hold_sampling_is_seeded_and_the_cache_agrees(kind):
    prior = tiny_prior(kind)
    prompt = random_tokens(prior.config, 2, batch=2)
    sampling = Sampling(top_p=0.6, exact_hold=True)
    cached = sample_tokens(prior, 36, prompt, sampling, seed=3)
    assert torch.equal(cached, sample_tokens(prior, 36, prompt, sampling, seed=3, use_cache=False))
    alone = sample_tokens(prior, 36, prompt[1:], sampling, seed=4)
    assert torch.equal(cached[1], alone[0])
    plain = sample_tokens(prior, 36, prompt, seed=3)
    assert torch.equal(sample_tokens(prior, 36, prompt, Sampling(exact_hold=True), seed=3), plain)
    # with a nucleus it does change the draws (sample_tokens passes the held code on)
    assert not torch.equal(cached, sample_tokens(prior, 36, prompt, Sampling(top_p=0.6), seed=3))


@pytest.mark.parametrize("kind", KINDS)
def test_contrast_divides_level_0_by_the_context_free_prior(kind):
    """Contrast c draws level 0 from p(code | piece) / p(code | nothing)^c. A piece's first frame
    has nothing before it, so there it draws from p^(1 - c): at c = 1 every code is equally
    likely, however peaked the prior is. The finer levels are left alone, the draws stay seeded
    and the cached and uncached paths agree."""
    prior = tiny_prior(kind)
    config, start = prior.config, torch.zeros(4000, 0, dtype=torch.long)
    levels = token_levels(config.level_strides)
    for _ in range(8):  # a peaked prior: one code far likelier than the rest, but not certain
        offsets = contrast_offsets(prior, 1.0)
        free = torch.exp(-offsets[0])  # p(code | nothing) at level 0
        if 0.3 < float(free.max()) < 0.9:
            break
        with torch.no_grad():
            for name, p in prior.named_parameters():
                if name.startswith(("head", "out")):
                    p.mul_(1.5 if float(free.max()) <= 0.3 else 0.7)
    assert 0.3 < float(free.max()) < 0.9 and abs(float(free.sum()) - 1) < 1e-4
    assert torch.all(offsets[levels != 0] == 0) and torch.all(offsets[levels == 0] > 0)
    favourite = int(free.argmax())

    def share(contrast):  # of the first frame's level-0 draws that are the favourite code
        first = sample_tokens(prior, len(levels), start, Sampling(contrast=contrast), seed=0)[:, 0]
        return float((first == favourite).float().mean())

    assert abs(share(0.0) - float(free.max())) < 0.03
    assert abs(share(1.0) - 1 / config.codebook_size) < 0.02
    flat = free**0.5 / (free**0.5).sum()  # c = 0.5: p^0.5, renormalised
    assert abs(share(0.5) - float(flat[favourite])) < 0.03
    prompt = random_tokens(config, 2, batch=2)
    sampling = Sampling(contrast=0.6, top_p=0.9, exact_hold=True)
    cached = sample_tokens(prior, 36, prompt, sampling, seed=3)
    assert torch.equal(cached, sample_tokens(prior, 36, prompt, sampling, seed=3, use_cache=False))
    assert torch.equal(cached[1], sample_tokens(prior, 36, prompt[1:], sampling, seed=4)[0])
    assert not torch.equal(cached, sample_tokens(prior, 36, prompt, Sampling(top_p=0.9), seed=3))
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="contrast"):
            sample_tokens(prior, 3, start[:1], Sampling(contrast=bad))


def test_top_k_and_top_p_keep_only_the_likeliest():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(200, 1)
    gen = torch.Generator().manual_seed(0)
    assert set(sample_next(logits, top_k=2, generator=gen).tolist()) == {0, 1}
    assert set(sample_next(logits, top_p=0.7, generator=gen).tolist()) == {0, 1}
    assert set(sample_next(logits, top_p=0.4, generator=gen).tolist()) == {0}
    assert set(sample_next(logits, generator=gen).tolist()) == {0, 1, 2, 3}
    cold = sample_next(logits, temperature=0.05, generator=gen)
    assert (cold == 0).float().mean() > 0.95
    with pytest.raises(ConfigError):
        sample_tokens(
            tiny_prior(), 3, torch.zeros(1, 0, dtype=torch.long), Sampling(temperature=0.0)
        )


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return Codec(tiny_codec_config()).eval()  # 8 kHz, 8 samples/frame, 16-sample blocks


@pytest.mark.parametrize("kind", KINDS)
def test_generate_any_length_returns_exactly_the_requested_samples(kind, codec):
    prior = tiny_prior(kind)
    seconds = 0.0301  # 241 samples = 16 blocks = 48 tokens > 12-token context
    calls = []
    wav = generate(
        prior, codec, seconds, n=2, seed=0, on_progress=lambda d, t: calls.append((d, t))
    )
    assert wav.shape == (2, 1, 241)
    assert torch.isfinite(wav).all() and not torch.equal(wav[0], wav[1])
    assert calls[-1] == (48, 48) and all(t == 48 for _, t in calls)
    torch.testing.assert_close(generate(prior, codec, seconds, n=2, seed=0), wav)


def test_continuation_begins_with_the_prompt_codes(codec, monkeypatch):
    prior = tiny_prior("transformer")
    prompt_wav = harmonic(100, 8000)[0]  # 6 whole blocks (96 samples) + 4
    decoded = []
    decode = codec.decode
    monkeypatch.setattr(
        codec, "decode", lambda codes, **options: decoded.append(codes) or decode(codes, **options)
    )
    wav = generate(prior, codec, 0.01, n=2, prompt_wav=prompt_wav, prompt_seconds=0.011)
    expected = codec.encode(prompt_wav[None, :, -80:]).keep(2)  # 88 samples -> 5 blocks
    assert wav.shape == (2, 1, 80 + 80)
    (codes,) = decoded
    for level, want in zip(codes.slice_blocks(0, 5).levels, expected.levels, strict=True):
        assert torch.equal(level, want.expand(2, -1))
    with pytest.raises(AudioError, match="shorter than one coarse frame"):
        generate(prior, codec, 0.01, prompt_wav=prompt_wav[:, :10])


def test_chunked_decode_matches_whole_decode(codec):
    prior = tiny_prior("transformer")
    tokens = sample_tokens(prior, 3 * 40, torch.zeros(1, 0, dtype=torch.long))
    codes = Codes.from_tokens(tokens, (2, 1), 16, num_samples=40 * 16 - 5)
    whole = codec.decode(codes)
    chunked = decode_codes(codec, codes, chunk_blocks=7, margin_blocks=4)
    assert chunked.shape == whole.shape == (1, 1, 635)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-4)


def test_prior_that_does_not_fit_the_codec_is_refused(codec):
    prior = tiny_prior("transformer", codebook_size=32)
    with pytest.raises(CheckpointError, match="does not fit codec"):
        generate(prior, codec, 0.01)


@pytest.mark.parametrize("decoder", ("conv", "istft"))
def test_chunked_decode_with_the_computed_margin_matches_whole_decode(decoder):
    torch.manual_seed(0)
    codec = Codec(tiny_codec_config(decoder=decoder, istft_dim=16, istft_layers=2)).eval()
    codes = codec.encode(harmonic(60 * 16, 8000))
    whole = codec.decode(codes)
    chunked = decode_codes(codec, codes, chunk_blocks=7)  # margin: margins.decoder_margin_blocks
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind, tmp_path, codec):
    prior = tiny_prior(kind)
    codec_id = save_codec(codec, tmp_path / "codec.safetensors")
    prior_id = save_prior(prior, tmp_path / "prior.safetensors", codec_id)
    loaded = load_prior(tmp_path / "prior.safetensors")
    assert loaded.config == prior.config and type(loaded) is type(prior)
    assert loaded.codec_id == codec_id and loaded.checkpoint_id == prior_id
    tokens = random_tokens(prior.config, 3)
    torch.testing.assert_close(loaded(tokens), prior(tokens))
    with pytest.raises(CheckpointError, match="is a codec model"):
        load_prior(tmp_path / "codec.safetensors")


def test_missing_default_prior_is_a_clear_error(tmp_path, monkeypatch):
    import vqaudio.prior

    monkeypatch.setattr(vqaudio.prior, "DEFAULT_PRIOR", tmp_path / "prior.safetensors")
    with pytest.raises(CheckpointError, match="--prior PATH"):
        load_prior(None)


def test_sampling_runs_single_threaded_and_restores_the_thread_count():
    prior, seen = tiny_prior(), []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        sample_tokens(
            prior,
            6,
            torch.zeros(1, 0, dtype=torch.long),
            on_progress=lambda d, t: seen.append(torch.get_num_threads()),
        )
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_frame_prior_grown_to_more_levels_keeps_its_coarse_predictions():
    """with_more_levels: the new levels enter the temporal transformer at zero, so the slots before
    the first new token of a frame (levels 0 and 1 at its start) get the same -log p whatever the
    new levels hold; a later old slot moves and sees the new token, and strides that do not
    extend the prior's are refused."""
    from vqaudio.prior.grow import with_more_levels

    prior = tiny_prior("frames", code_counts=2)
    with torch.no_grad():  # trained-looking weights: nothing left at its zero init
        for p in prior.parameters():
            p.add_(0.1 * torch.randn_like(p))
    grown = with_more_levels(prior, (2, 1, 1)).eval()
    assert grown.config.num_levels == 3 and grown.config.tokens_per_block == 5
    gen = torch.Generator().manual_seed(0)
    levels = [torch.randint(0, 16, (2, n), generator=gen) for n in (4, 8, 8)]
    old = Codes(levels[:2], (2, 1)).to_tokens(16)
    new = Codes(levels, (2, 1, 1)).to_tokens(16)
    before = prior.token_nll(old).view(2, 4, 3)
    after = grown.token_nll(new).view(2, 4, 5)
    torch.testing.assert_close(after[:, :, :2], before[:, :, :2], rtol=1e-5, atol=1e-5)
    other = Codes(levels[:2] + [torch.randint(0, 16, (2, 8), generator=gen)], (2, 1, 1))
    torch.testing.assert_close(
        grown.token_nll(other.to_tokens(16)).view(2, 4, 5)[:, :, :2],
        before[:, :, :2],
        rtol=1e-5,
        atol=1e-5,
    )
    assert not torch.allclose(after[:, :, 3], before[:, :, 2])  # level 1's second code
    again = with_more_levels(prior, (2, 1, 1))
    same = zip(again.state_dict().values(), grown.state_dict().values())
    assert all(torch.equal(a, b) for a, b in same)  # seeded
    with pytest.raises(ConfigError, match="must start with"):
        with_more_levels(prior, (4, 1, 1))


def test_generated_pieces_louder_than_minus_1_dbfs_are_scaled_down_whole(codec, monkeypatch):
    """A piece whose decode passes -1 dBFS comes out scaled to peak there, its shape unchanged;
    a quieter piece of the same batch keeps its samples exactly."""
    import vqaudio.generation as generation

    t = torch.linspace(0, 1, 241)
    loud, quiet = 3.0 * torch.sin(40 * t), 0.5 * torch.sin(30 * t)
    monkeypatch.setattr(
        generation, "decode_codes", lambda *a, **k: torch.stack([loud, quiet])[:, None]
    )
    wav = generate(tiny_prior("frames"), codec, 0.0301, n=2, seed=0)
    ceiling = 10 ** (-1 / 20)
    assert float(wav[0].abs().max()) == pytest.approx(ceiling, rel=1e-6)
    torch.testing.assert_close(wav[0, 0], loud * ceiling / float(loud.abs().max()))
    assert torch.equal(wav[1, 0], quiet)
