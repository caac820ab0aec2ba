"""Controls: chord syntax, beat grids, DSP analysis, and a frame prior that follows them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqaudio.controls import analysis, chords, grid, plan
from vqaudio.controls.grid import NUM_CONTROLS, Grid, regular, render
from vqaudio.errors import UsageError
from vqaudio.generation import sample_tokens
from vqaudio.prior import build_prior, frame_loop
from vqaudio.prior.sampling import Sampling

from .conftest import tiny_prior, tiny_prior_config
from .test_prior import random_tokens

RATE = 12000


def click_track(bpm: float, seconds: float, rate: int = RATE, chord_roots=None) -> np.ndarray:
    """Decaying noise bursts on every beat, over held triads (one per bar) if ``chord_roots``."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    wav = np.zeros_like(t)
    burst = rng.standard_normal(int(0.03 * rate)) * np.exp(-np.arange(int(0.03 * rate)) / 60)
    for beat in np.arange(0.25, seconds - 0.05, 60 / bpm):
        i = int(beat * rate)
        wav[i : i + len(burst)] += burst[: len(wav) - i]
    if chord_roots is not None:
        bar = 4 * 60 / bpm
        for k, root in enumerate(chord_roots * int(seconds / bar / len(chord_roots) + 1)):
            span = (t >= 0.25 + k * bar) & (t < 0.25 + (k + 1) * bar)
            for semitones in (0, 4, 7):
                f = 220 * 2 ** ((root - 9 + semitones) / 12)
                wav[span] += 0.2 * np.sin(2 * np.pi * f * t[span])
    return (0.3 * wav).astype(np.float32)


def test_chord_symbols_parse_and_bad_ones_name_themselves():
    assert chords.parse_progression("Am F C G") == [21, 5, 0, 7]
    assert chords.parse_progression("C#m | Bb, Ebm N") == [13, 10, 15, chords.NO_CHORD]
    assert chords.parse_chord("A:min") == 21
    assert chords.progression_text([21, 5, 0, 7]) == "Am F C G"
    with pytest.raises(UsageError, match="'H7'"):
        chords.parse_progression("Am H7")
    with pytest.raises(UsageError, match="empty"):
        chords.parse_progression("  ")


def test_a_regular_grid_puts_one_beat_per_period_in_the_frames():
    frame = 0.08
    g = regular(120.0, [21, 5], seconds=8.0)  # a beat every 0.5 s, a chord per bar (2 s)
    out = render(g, True, 100, frame)
    assert out.shape == (100, NUM_CONTROLS)
    beats = out[:, 0:4].sum()
    assert beats == 16  # 8 s at 2 beats/s
    assert np.all(out[:, grid.RHYTHM_FLAG] == 1) and np.all(out[:, grid.HARMONY_FLAG] == 1)
    np.testing.assert_allclose(out[:, grid.TEMPO_COLUMN], 0.0, atol=1e-6)  # log2(120 / 120)
    chord = out[:, grid.HARMONY][:, :-1].argmax(1)
    assert set(chord[:25]) == {21} and set(chord[25:50]) == {5}  # Am for 2 s, then F
    dropped = grid.drop(out, rhythm=True, harmony=False)
    assert np.all(dropped[:, grid.RHYTHM] == 0) and np.array_equal(
        dropped[:, grid.HARMONY], out[:, grid.HARMONY]
    )


def test_onsets_fill_their_columns_sub_slot_by_sub_slot_and_drop_on_their_own():
    envelope = np.linspace(0.0, 2.0, 200).astype(np.float32)  # 4 s at 50 frames/s
    g = Grid(np.array([0.0, 0.5, 1.0]), 0, np.zeros(3, np.int64), envelope)
    out = render(g, True, 60, 0.08, start_frame=5)  # from 0.4 s: envelope frame 20 on
    onsets = out[:, grid.ONSETS][:, :4].reshape(-1)
    np.testing.assert_allclose(onsets[:180], envelope[20:200])
    assert np.all(onsets[180:] == 0)  # past the envelope's end
    assert np.all(out[:, grid.ONSET_FLAG] == 1)
    dropped = grid.drop(out, rhythm=False, harmony=False, onsets=True)
    assert np.all(dropped[:, grid.ONSETS] == 0)
    assert np.array_equal(dropped[:, : grid.ONSETS.start], out[:, : grid.ONSETS.start])
    assert np.all(render(Grid(g.beats, 0, g.chords), True, 60, 0.08)[:, grid.ONSETS] == 0)


def test_a_rhythm_pattern_laid_on_a_grid_reads_back_bar_by_bar():
    pattern = np.array([2, 0.1, 0.5, 0.1, 1, 0.1, 0.5, 0.1] * 2, np.float32)  # 16ths of a bar
    g = regular(100.0, [0], seconds=12.0, start=0.3, downbeat_phase=1)
    g = Grid(g.beats, g.downbeat, g.chords, plan.pattern_onsets(g, pattern, 12.0, start=0.3))
    assert np.all(g.onsets[:15] == 0)  # before the start
    bars = plan.bar_patterns(g)
    assert len(bars) >= 3
    np.testing.assert_allclose(bars[1:-1], np.broadcast_to(pattern, bars[1:-1].shape))
    stats = plan.statistics([g])
    found = plan.patterns_of(stats["plan_patterns"])
    assert len(found) == len(bars) and np.allclose(found[1], pattern)
    downbeat_only = np.r_[2.0, np.full(15, 0.1)].astype(np.float32)  # no beat for a tracker
    g = Grid(g.beats, g.downbeat, g.chords, plan.pattern_onsets(g, downbeat_only, 12.0, 0.3))
    assert len(plan.patterns_of(plan.statistics([g])["plan_patterns"])) == 0


def test_analysis_finds_the_tempo_and_chords_of_a_click_track():
    wav = click_track(100.0, 20.0, chord_roots=[9, 5, 0, 7])  # A F C G, roots; Am is minor
    found = analysis.analyse(wav, RATE)
    assert found is not None
    assert abs(found.tempo - 100.0) / 100.0 < 0.04
    names = {chords.chord_name(c) for c in found.chords}
    assert {"A", "F", "C", "G"} <= names  # major triads synthesized on those roots
    clicks = np.rint((0.25 + np.arange(30) * 0.6) * grid.ONSET_RATE).astype(int)[:32]
    clicks = clicks[clicks < len(found.onsets) - 1]
    at_clicks = np.maximum(found.onsets[clicks], found.onsets[clicks + 1])
    assert np.median(at_clicks) > 4 * np.median(found.onsets)  # the envelope peaks at clicks


def test_plan_statistics_and_sampled_plans_move():
    grids = [regular(100.0, [21, 5, 0, 7], 30.0), regular(130.0, [0, 7, 9, 5], 30.0)]
    stats = plan.statistics(grids)
    assert stats["plan_tempi"].sum() == 2
    assert stats["plan_moves"].sum() > 0
    low, high = plan.tempo_range(stats["plan_tempi"])
    assert low <= 100 and high >= 130
    rng = np.random.default_rng(0)
    for _ in range(10):
        p = plan.sample_plan(stats["plan_tempi"], stats["plan_moves"], rng)
        assert low <= p.tempo <= high and len(set(p.chords)) > 1


def test_a_continuation_keeps_the_prompt_tempo_finer_than_the_tracker_frames():
    """A tracker's beats fall on 20 ms frames: at 160 BPM (0.375 s) their intervals read 0.36
    or 0.38 s, and the median of them 157.9 BPM. The continued grid keeps 160 within 0.5 %."""
    beats = np.round(np.arange(24) * 0.375 / 0.02) * 0.02
    prompt = Grid(beats, 0, np.zeros(24, dtype=np.int64))
    stats = plan.plan_buffers()
    stats["plan_moves"][0, 0, 5] = 1.0
    continued, p = plan.continue_grid(prompt, stats["plan_moves"], 20.0, np.random.default_rng(0))
    new = continued.beats[continued.beats > beats[-1]]
    assert abs(np.diff(new).mean() / 0.375 - 1) < 0.005
    assert abs(p.tempo / 160 - 1) < 0.005
    assert np.array_equal(continued.beats[:24], beats) and new[-1] >= 20.0


def test_controls_start_at_zero_so_a_warm_start_computes_as_before():
    config = tiny_prior_config("frames", code_counts=2, context_blocks=6, controls=NUM_CONTROLS)
    torch.manual_seed(0)
    prior = build_prior(config).eval()
    tokens = random_tokens(config, 4, batch=2)
    controls = torch.randn(2, 30, NUM_CONTROLS)
    assert torch.equal(prior.window_logits(tokens), prior.window_logits(tokens, controls=controls))


def test_a_prior_on_fewer_control_columns_reads_the_first_ones_and_widens_to_more():
    from vqaudio.train.prior_task import _widened

    narrow = tiny_prior("frames", code_counts=2, context_blocks=6, controls=36)
    torch.nn.init.normal_(narrow.control_in.weight)
    tokens = random_tokens(narrow.config, 4, batch=2)
    controls = torch.randn(2, 30, NUM_CONTROLS)
    expected = narrow.window_logits(tokens, controls=controls[..., :36])
    torch.testing.assert_close(narrow.window_logits(tokens, controls=controls), expected)
    assert not hasattr(narrow, "plan_patterns")
    wide = build_prior(tiny_prior_config("frames", code_counts=2, context_blocks=6, controls=41))
    wide.load_state_dict(_widened(narrow.state_dict(), wide.state_dict()))
    wide.eval()
    torch.testing.assert_close(wide.window_logits(tokens, controls=controls), expected)


def test_the_control_scale_extrapolates_the_control_terms_from_none():
    from vqaudio.prior.frame_controls import control_terms

    prior = tiny_prior("frames", code_counts=2, context_blocks=6, controls=NUM_CONTROLS)
    g = regular(150.0, [0, 9], 3.0)
    g = Grid(g.beats, g.downbeat, g.chords, np.random.default_rng(0).random(150) * 2)
    controls = torch.from_numpy(render(g, True, 30, 0.08))[None]
    none_t, none_d = control_terms(prior, torch.zeros_like(controls))
    one_t, one_d = control_terms(prior, controls)
    scaled_t, scaled_d = control_terms(prior, 2.5 * controls)
    torch.testing.assert_close(scaled_t, none_t + 2.5 * (one_t - none_t))
    torch.testing.assert_close(scaled_d, none_d + 2.5 * (one_d - none_d))
    prompt = random_tokens(prior.config, 1, batch=1)
    free = sample_tokens(prior, 45, prompt, seed=1, controls=torch.zeros_like(controls))
    off = sample_tokens(prior, 45, prompt, Sampling(control_scale=0.0), seed=1, controls=controls)
    assert torch.equal(off, free)
    plain = sample_tokens(prior, 45, prompt, seed=1, controls=controls)
    louder = sample_tokens(
        prior, 45, prompt, Sampling(control_scale=2.5), seed=1, controls=controls
    )
    assert not torch.equal(plain, louder)


def test_the_cached_stream_with_controls_equals_the_window_computation():
    prior = tiny_prior("frames", code_counts=2, context_blocks=6, controls=NUM_CONTROLS)
    tokens = random_tokens(prior.config, 4, batch=2)
    controls = torch.randn(2, 30, NUM_CONTROLS)
    with torch.inference_mode():
        stream = prior.stream(tokens[:, :0], controls=controls)
        for i in range(tokens.shape[1]):
            lo, hi = prior.slot_ranges[i % prior.tokens_per_block]
            expected = prior.next_logits(tokens[:, :i], controls=controls)[:, lo:hi]
            torch.testing.assert_close(stream.slot_logits((lo, hi)), expected)
            stream.push(tokens[:, i])
        assert not torch.allclose(  # the controls reach the logits
            prior.next_logits(tokens, controls=controls), prior.next_logits(tokens)
        )


@pytest.mark.skipif(frame_loop.library() is None, reason="the C sampler was not built")
def test_c_and_pytorch_sampling_agree_with_controls(monkeypatch):
    prior = tiny_prior("frames", code_counts=2, context_blocks=6, controls=NUM_CONTROLS)
    prompt = random_tokens(prior.config, 1, batch=2)
    controls = torch.randn(2, 40, NUM_CONTROLS)
    fast = sample_tokens(prior, 60, prompt, seed=3, controls=controls)  # past the context
    monkeypatch.setenv("VQAUDIO_FAST_DEPTH", "0")
    frame_loop.library.cache_clear()
    try:
        slow = sample_tokens(prior, 60, prompt, seed=3, controls=controls)
        guided = sample_tokens(prior, 60, prompt, Sampling(guidance=2.0), seed=3, controls=controls)
    finally:
        monkeypatch.delenv("VQAUDIO_FAST_DEPTH")
        frame_loop.library.cache_clear()
    assert torch.equal(fast, slow)
    assert not torch.equal(guided, slow)
    assert not torch.equal(fast, sample_tokens(prior, 60, prompt, seed=3))


def _chord_controls(batch: int, num_frames: int, run: int, seed: int = 0) -> torch.Tensor:
    """Random controls whose chord changes every ``run`` frames (a random chord each time)."""
    from vqaudio.controls.grid import HARMONY, HARMONY_FLAG

    generator = torch.Generator().manual_seed(seed)
    controls = torch.randn(batch, num_frames, NUM_CONTROLS, generator=generator)
    chord = torch.randint(0, 24, (batch, -(-num_frames // run)), generator=generator)
    harmony = torch.zeros(batch, num_frames, HARMONY_FLAG - HARMONY.start)
    harmony.scatter_(2, chord.repeat_interleave(run, 1)[:, :num_frames, None], 1.0)
    controls[..., HARMONY.start : HARMONY_FLAG] = harmony
    controls[..., HARMONY_FLAG] = 1.0
    return controls


def test_chord_ids_and_a_cache_that_recalls_each_chord_own_codes():
    from vqaudio.prior.frame_controls import PROMPT_CHORD, chord_ids
    from vqaudio.prior.frames import code_counts

    controls = _chord_controls(2, 12, 4)
    controls[1, :6, 35] = 0.0  # the harmony part off for 6 frames: no chord (-1)
    chords = chord_ids(controls)
    expected = controls[..., 10:35].argmax(-1)
    assert torch.equal(chords[0], expected[0])
    assert chords[1, :6].tolist() == [-1] * 6 and torch.equal(chords[1, 6:], expected[1, 6:])
    prompted = chord_ids(controls, prompt_frames=3)  # a prompt's frames count under every chord
    assert prompted[:, :3].eq(PROMPT_CHORD).all() and torch.equal(prompted[:, 3:], chords[:, 3:])
    chords = prompted
    frames = torch.randint(0, 9, (2, 12, 3))
    for forget in (1.0, 0.5):
        counts = code_counts(frames, 9, 3, chords, forget)
        for b in range(2):
            for f in range(12):
                mine = [chords[b, f], PROMPT_CHORD]
                same = [g for g in range(f) if chords[b, g] in mine]
                other = [g for g in range(f) if chords[b, g] not in mine]
                own = torch.bincount(frames[b, same].flatten(), minlength=9).float()
                rest = torch.bincount(frames[b, other].flatten(), minlength=9).float()
                near = torch.bincount(frames[b, max(0, f - 3) : f].flatten(), minlength=9)
                assert torch.equal(counts[b, f, 0], own + (1 - forget) * rest)
                assert torch.equal(counts[b, f, 1], near.float())  # a chord change is no break
    assert torch.equal(code_counts(frames, 9, 3, chords, 0.0), code_counts(frames, 9, 3))


def test_the_stream_with_a_cache_by_chord_equals_the_window_computation_through_slides():
    from vqaudio.prior.frame_controls import chord_ids

    prior = tiny_prior("frames", code_counts=2, context_blocks=6, controls=NUM_CONTROLS)
    with torch.no_grad():
        prior.count_gate.bias.fill_(1.0)
    tokens = random_tokens(prior.config, 14, batch=2)  # past the 6-frame context: slides
    controls = _chord_controls(2, 15, 3)
    given = dict(controls=controls, chords=chord_ids(controls, prompt_frames=2), forget=0.75)
    with torch.inference_mode():
        stream = prior.stream(tokens[:, :0], **given)
        for i in range(tokens.shape[1]):
            lo, hi = prior.slot_ranges[i % prior.tokens_per_block]
            expected = prior.next_logits(tokens[:, :i], **given)[:, lo:hi]
            torch.testing.assert_close(stream.slot_logits((lo, hi)), expected)
            stream.push(tokens[:, i])
        assert not torch.allclose(  # counting by chord changes the logits
            prior.next_logits(tokens, **given), prior.next_logits(tokens, controls=controls)
        )


def test_sampling_with_a_cache_by_chord_is_the_same_in_every_loop(monkeypatch):
    prior = tiny_prior("frames", code_counts=2, context_blocks=6, controls=NUM_CONTROLS)
    with torch.no_grad():
        prior.count_gate.bias.fill_(2.0)
    prompt = random_tokens(prior.config, 1, batch=2)
    controls = _chord_controls(2, 40, 3)
    by_chord = Sampling(cache_by_chord=0.75)
    fast = sample_tokens(prior, 60, prompt, by_chord, seed=3, controls=controls)
    uncached = sample_tokens(
        prior, 60, prompt, by_chord, seed=3, controls=controls, use_cache=False
    )
    monkeypatch.setenv("VQAUDIO_FAST_DEPTH", "0")
    frame_loop.library.cache_clear()
    try:
        slow = sample_tokens(prior, 60, prompt, by_chord, seed=3, controls=controls)
    finally:
        monkeypatch.delenv("VQAUDIO_FAST_DEPTH")
        frame_loop.library.cache_clear()
    assert torch.equal(fast, slow) and torch.equal(fast, uncached)
    assert not torch.equal(fast, sample_tokens(prior, 60, prompt, seed=3, controls=controls))
    one_chord = _chord_controls(2, 40, 40)  # one chord throughout: nothing to forget
    assert torch.equal(
        sample_tokens(prior, 60, prompt, by_chord, seed=3, controls=one_chord),
        sample_tokens(prior, 60, prompt, seed=3, controls=one_chord),
    )


def _beats_at_random(rng, num_frames: int, frame: float) -> tuple[Grid, np.ndarray]:
    """Beats 2-6 frames apart at random (no period to infer): the grid, and 1 where a beat
    falls in a frame."""
    times, t = [], rng.uniform(0, 3) * frame
    while t < (num_frames + 4) * frame:
        times.append(t)
        t += rng.integers(2, 7) * frame + rng.uniform(-0.3, 0.3) * frame
    g = Grid(np.array(times), 0, np.zeros(len(times), dtype=np.int64))
    controls = render(g, False, num_frames, frame)
    return g, controls, (controls[:, 0:4].sum(1) > 0).astype(np.int64)


def _fit(prior, example, steps: int = 150, batch: int = 16) -> None:
    """Train ``prior`` on batches of ``example()`` -> (tokens, controls), then set it to eval."""
    optimizer = torch.optim.AdamW(prior.parameters(), lr=3e-3)
    for _ in range(steps):
        tokens, controls = zip(*[example() for _ in range(batch)])
        loss = prior.loss(torch.stack(tokens), torch.stack(controls))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    prior.eval()


def test_a_prior_trained_on_a_click_track_follows_the_beat_it_is_given():
    """Level 0 sounds (code 1) where a beat falls, else rests (code 0); the beats come at random
    intervals, so only the controls say where the next one falls."""
    torch.manual_seed(0)
    frames, frame = 24, 0.08
    config = tiny_prior_config("frames", context_blocks=frames, controls=NUM_CONTROLS)
    prior = build_prior(config)
    size, rng = config.codebook_size, np.random.default_rng(0)

    def example():
        _, controls, beat = _beats_at_random(rng, frames, frame)
        tokens = np.stack([beat, size + rng.integers(0, size, frames), size + beat], 1)
        return torch.from_numpy(tokens.reshape(-1)), torch.from_numpy(controls)

    _fit(prior, example)

    def f_measure(use_controls: bool) -> float:
        scores = []
        for seed in range(4):
            _, controls, beat = _beats_at_random(np.random.default_rng(100 + seed), frames, frame)
            given = torch.from_numpy(controls)[None] if use_controls else None
            tokens = sample_tokens(
                prior, frames * 3, torch.zeros(1, 0, dtype=torch.long), seed=seed, controls=given
            )
            sounded = (tokens[0, 0::3] == 1).numpy()
            hits = (sounded & (beat == 1)).sum()
            scores.append(2 * hits / max(sounded.sum() + beat.sum(), 1))
        return float(np.mean(scores))

    followed, free = f_measure(True), f_measure(False)
    assert followed > 0.9, followed
    assert free < 0.7, free


def test_a_prior_trained_on_onsets_alone_follows_them_within_the_frame():
    """Strikes fall in 20 ms sub-slots at random; the controls carry only their onset strength
    (no beat grid, no chords). Level 0 sounds where a frame holds a strike; each of level 1's two
    slots sounds where its own half of the frame does, so the depth slots must each read the
    onsets they span, finer than a frame."""
    from vqaudio.controls.grid import ONSET_FLAG, ONSETS, SUB_SLOTS

    torch.manual_seed(0)
    frames = 24
    config = tiny_prior_config("frames", context_blocks=frames, controls=NUM_CONTROLS)
    prior = build_prior(config)
    size = config.codebook_size

    def example(rng):
        strikes = (rng.random((frames, SUB_SLOTS)) < 0.15).astype(np.float32)
        controls = np.zeros((frames, NUM_CONTROLS), np.float32)
        controls[:, ONSETS.start : ONSETS.start + SUB_SLOTS] = 2.0 * strikes
        controls[:, ONSET_FLAG] = 1.0
        halves = strikes.reshape(frames, 2, SUB_SLOTS // 2).max(2).astype(np.int64)
        tokens = np.stack([halves.max(1), size + halves[:, 0], size + halves[:, 1]], 1)
        return torch.from_numpy(tokens.reshape(-1)), torch.from_numpy(controls), halves

    rng = np.random.default_rng(0)
    _fit(prior, lambda: example(rng)[:2])

    def f_measure(use_controls: bool) -> float:
        scores = []
        for seed in range(4):
            _, controls, halves = example(np.random.default_rng(100 + seed))
            given = controls[None] if use_controls else None
            tokens = sample_tokens(
                prior, frames * 3, torch.zeros(1, 0, dtype=torch.long), seed=seed, controls=given
            )
            sounded = (tokens[0].view(frames, 3)[:, 1:] == size + 1).numpy()
            hits = (sounded & (halves == 1)).sum()
            scores.append(2 * hits / max(sounded.sum() + halves.sum(), 1))
        return float(np.mean(scores))

    followed, free = f_measure(True), f_measure(False)
    assert followed > 0.9, followed
    assert free < 0.6, free


def test_a_prior_recipe_with_controls_trains_on_beat_grids_and_keeps_their_statistics(tmp_path):
    """The training task analyses each file's beat grid once into the run folder, trains on the
    rendered controls, and writes the tempo statistics into the prior's file."""
    from pathlib import Path

    from vqaudio import audio
    from vqaudio.codec.io import save_codec
    from vqaudio.prior import load_prior
    from vqaudio.recipe import load_recipe
    from vqaudio.train import train

    from .conftest import diverse_codec

    songs = tmp_path / "songs"
    songs.mkdir()
    for i, bpm in enumerate((90.0, 120.0, 150.0)):
        audio.write(songs / f"s{i}.wav", click_track(bpm, 12.0, chord_roots=[9, 5])[None], RATE)
    codec = tmp_path / "codec.safetensors"
    save_codec(diverse_codec(), codec)
    recipes = Path(__file__).resolve().parent.parent / "recipes"
    sets = {
        "codec": codec,
        "data.path": songs,
        "data.val_files": 1,
        "prior.kind": "frames",
        "prior.controls": NUM_CONTROLS,
        "train.steps": 2,
        "train.eval_every": 2,
        "train.checkpoint_every": 2,
        "train.log_every": 1,
    }
    recipe = load_recipe(recipes / "tiny-prior.yaml", [f"{k}={v}" for k, v in sets.items()])
    run = tmp_path / "run"
    train(recipe, run, device="cpu")
    assert len(list((run / "grids").glob("*.npz"))) == 3
    prior = load_prior(run / "model.safetensors")
    assert prior.config.controls == NUM_CONTROLS
    assert prior.plan_tempi.sum() == 2  # the two training files, one tempo each
    low, high = plan.tempo_range(prior.plan_tempi)
    assert low <= 120 <= high
