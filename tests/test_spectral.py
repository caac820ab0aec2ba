"""The spectral codec pair (Fourier front-end encoder, magnitude decoder + Griffin-Lim): does it
keep the notes, is it well conditioned, and does chunked decoding equal one pass?"""

import math

import pytest
import torch

from vqaudio.codec import Codec
from vqaudio.codec.griffin_lim import PHASE_RESET_FRAMES, griffin_lim, locked_phase
from vqaudio.codec.margins import decoder_margin_blocks
from vqaudio.codec.spectral import fourier_basis, initialize_from_data, log_magnitude
from vqaudio.codec.spectral_loss import SpectralLoss
from vqaudio.config import CodecConfig
from vqaudio.errors import ConfigError
from vqaudio.eval.metrics import chroma_correlation
from vqaudio.generation import decode_codes
from vqaudio.recipe import load_recipe

from .conftest import assert_chunked_decode_is_one_pass, harmonic, tiny_codec_config

RATE = 8000


def spectral_config(**overrides) -> CodecConfig:
    base = dict(
        sample_rate=RATE,
        strides=(4, 32),  # hop 128: 62.5 frames/s
        encoder="fourier",
        decoder="spectral",
        n_fft=512,
        spectral_dim=32,
        encoder_layers=1,
        spectral_layers=2,
        griffin_lim_iters=16,
        latent_norm="none",
        codebook_dim=0,
        l2_normalize=False,
        level_strides=(2, 1),
        codebook_size=32,
    )
    base.update(overrides)
    return tiny_codec_config(**base)


def chord(root_hz: float, seconds: float = 1.5, seed: int = 0) -> torch.Tensor:
    """A major triad of harmonic tones (1, C=1, T)."""
    n = int(seconds * RATE)
    notes = [root_hz * 2 ** (s / 12) for s in (0, 4, 7)]
    wav = sum(harmonic(n, RATE, f, seed + i) for i, f in enumerate(notes))
    return wav / wav.abs().max() * 0.5


def test_fourier_basis_is_the_stft():
    torch.manual_seed(0)
    wav = torch.randn(1, 1, 4096)
    basis = fourier_basis(512)
    padded = torch.nn.functional.pad(wav, (256, 256), mode="reflect")
    parts = torch.nn.functional.conv1d(padded, basis, stride=128)
    mag = (parts[:, :257].pow(2) + parts[:, 257:].pow(2)).sqrt()
    want = log_magnitude(wav, 512, 128).exp()[0] - 1e-4
    torch.testing.assert_close(mag, want, atol=2e-3, rtol=1e-3)


def test_learned_frontend_starts_as_the_fixed_stft():
    torch.manual_seed(0)
    fixed = Codec(spectral_config(frontend="stft")).eval()
    learned = Codec(spectral_config(frontend="learned")).eval()
    wav = chord(220.0, 1.0)
    torch.testing.assert_close(
        learned.encoder.features(wav), fixed.encoder.features(wav), atol=2e-3, rtol=1e-3
    )


def test_griffin_lim_renders_the_notes_of_exact_magnitudes():
    """The phase retrieval alone: exact magnitudes of chords -> audio whose chroma is the input's
    (random phase would keep about half; see the model card)."""
    for root in (220.0, 311.1):
        wav = chord(root, 2.0)[0, 0]
        magnitude = log_magnitude(wav.view(1, 1, -1), 512, 128).exp()[0] - 1e-4
        back = griffin_lim(magnitude, 512, 128, iters=32)
        assert chroma_correlation(wav.numpy(), back.numpy(), RATE) > 0.9


def _train(codec: Codec, signals, steps: int, lr: float = 1e-3) -> None:
    loss_fn = SpectralLoss(RATE, codec.config.n_fft, codec.config.hop_length, mel_weight=2.0)
    groups = codec.parameter_groups()
    for group in groups:
        group["lr"] = lr * group["lr_scale"]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    everything = torch.cat(signals)
    initialize_from_data(codec.encoder, codec.decoder, everything)
    codec.quantizer.initialize(codec.latent(everything))
    codec.train()
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = torch.cat(
            [signals[int(i)] for i in torch.randint(len(signals), (8,), generator=gen)]
        )
        out = codec(batch)
        loss = loss_fn(out.log_magnitude, batch)["total"] + out.vq_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    codec.eval()


def test_briefly_trained_tiny_codec_keeps_chords_apart():
    """Chord A and chord B decode to different chroma, each nearer its own input."""
    torch.manual_seed(0)
    codec = Codec(spectral_config(kmeans_init=True, ema_decay=0.9, quantizer_dropout=0.0))
    roots = [110.0 * 2 ** (k / 12) for k in range(12)]
    signals = [chord(r, 1.0, seed=k) for k, r in enumerate(roots)]
    _train(codec, signals, steps=80)
    a, b = chord(130.8, 1.5, seed=20), chord(185.0, 1.5, seed=21)  # C major, F# major
    dec_a = codec.decode(codec.encode(a))[0].numpy()
    dec_b = codec.decode(codec.encode(b))[0].numpy()
    a, b = a[0].numpy(), b[0].numpy()
    own_a, cross_a = chroma_correlation(a, dec_a, RATE), chroma_correlation(b, dec_a, RATE)
    own_b, cross_b = chroma_correlation(b, dec_b, RATE), chroma_correlation(a, dec_b, RATE)
    assert own_a > cross_a + 0.3 and own_b > cross_b + 0.3, (own_a, cross_a, own_b, cross_b)
    assert own_a > 0.5 and own_b > 0.5


def test_shipped_recipe_codec_is_well_conditioned_fresh_and_after_50_steps():
    """Every encoder stage's RMS stays of order one on a music-like signal (the old conv encoder
    grew 0.12 -> 13.7 fresh and to 4e4 after training)."""
    torch.manual_seed(0)
    recipe = load_recipe("recipes/music-24k-codec.yaml")
    config = recipe.codec
    codec = Codec(config)
    wav = torch.cat([harmonic(24000, 24000, f, seed=i) for i, f in enumerate((110, 220, 330))])
    rms = codec.stage_rms(wav)
    assert all(0.05 <= r <= 20 for r in rms), rms
    loss_fn = SpectralLoss(24000, config.n_fft, config.hop_length)
    optimizer = torch.optim.AdamW(codec.parameters(), lr=recipe.optim.lr)
    for step in range(50):
        out = codec(wav[step % 3 : step % 3 + 1].roll(step * 997, dims=-1))
        loss = loss_fn(out.log_magnitude, wav[step % 3 : step % 3 + 1].roll(step * 997, -1))
        optimizer.zero_grad()
        (loss["total"] + out.vq_loss).backward()
        optimizer.step()
    rms = codec.stage_rms(wav)
    assert all(0.05 <= r <= 20 for r in rms), rms


def test_spectral_chunked_decoding_matches_one_pass(tmp_path):
    torch.manual_seed(0)
    codec = Codec(spectral_config(kmeans_init=True, griffin_lim_iters=4))
    n = 3 * RATE
    wav = chord(220.0, 3.0) + 0.02 * torch.randn(1, 1, n)
    with torch.no_grad():
        codec.train()(wav)
    codec.eval()
    assert_chunked_decode_is_one_pass(codec, wav, RATE, tmp_path, chunk_blocks=20, min_chunks=3)


def test_a_long_file_decoded_chunk_by_chunk_matches_one_pass(tmp_path):
    """8 s in chunks of 20 blocks, without band levels: most decode windows start deep inside
    the file, where the locked phase start needs the window's offset."""
    torch.manual_seed(0)
    codec = Codec(spectral_config(kmeans_init=True, griffin_lim_iters=4))
    wav = chord(220.0, 8.0) + 0.02 * torch.randn(1, 1, 8 * RATE)
    with torch.no_grad():
        codec.train()(wav)
    codec.eval()
    assert codec.decoder.phase_init == "locked"
    assert_chunked_decode_is_one_pass(
        codec, wav, RATE, tmp_path, chunk_blocks=20, min_chunks=10, with_band_levels=False
    )


def stft_magnitude(wav: torch.Tensor, n_fft: int = 512, hop: int = 128) -> torch.Tensor:
    window = torch.hann_window(n_fft)
    return torch.stft(wav, n_fft, hop, window=window, return_complex=True).abs()


def spectral_convergence(wav: torch.Tensor, magnitude: torch.Tensor) -> float:
    """How far the magnitude of ``wav`` is from the ``magnitude`` it was rendered from."""
    again = stft_magnitude(wav)[..., : magnitude.shape[-1]]
    return float((again - magnitude).norm() / magnitude.norm())


def test_locked_phase_renders_steady_tones_without_iterations():
    """A chord's exact magnitudes, rendered with no Griffin-Lim iteration at all: from the locked
    start the phases already fit (the peaks advance at their own frequencies), from zero phase
    they do not; and a few iterations from the locked start beat many from zero."""
    wav = chord(220.0, 2.0)[0, 0]
    magnitude = stft_magnitude(wav)[None]
    locked0 = griffin_lim(magnitude, 512, 128, 0, init="locked")
    zero0 = griffin_lim(magnitude, 512, 128, 0, init="zero")
    assert spectral_convergence(locked0, magnitude) < 0.5 * spectral_convergence(zero0, magnitude)
    locked8 = griffin_lim(magnitude, 512, 128, 8, init="locked")
    zero32 = griffin_lim(magnitude, 512, 128, 32, init="zero")
    assert spectral_convergence(locked8, magnitude) < spectral_convergence(zero32, magnitude)
    with pytest.raises(ValueError, match="init"):
        griffin_lim(magnitude, 512, 128, 1, init="random")


def test_locked_phase_depends_only_on_frames_since_the_last_run_start():
    """The start of a window beginning at frame ``offset`` equals the whole signal's from the
    first run start in it on; before that it may not (its run began before the window)."""
    magnitude = stft_magnitude(chord(220.0, 3.0)[0, 0] + 0.01 * torch.randn(3 * RATE))[None]
    whole = locked_phase(magnitude, 512, 128)
    offset = PHASE_RESET_FRAMES + 10
    part = locked_phase(magnitude[..., offset:], 512, 128, offset=offset)
    after = 2 * PHASE_RESET_FRAMES - offset  # the next run starts here, in the window's frames
    torch.testing.assert_close(part[..., after:], whole[..., offset + after :])
    assert not torch.allclose(part[..., :after], whole[..., offset : offset + after])
    unaware = locked_phase(magnitude[..., offset:], 512, 128)  # as if the window were frame 0
    assert not torch.allclose(unaware[..., after:], whole[..., offset + after :])


@pytest.mark.parametrize("phase_init", ("locked", "zero"))
def test_chunked_decode_with_the_computed_margin_matches_one_pass_deep_into_a_long_signal(
    phase_init,
):
    """Windows that start well inside the signal (not at a run start) decode, cropped, to the
    one-pass decode: the margin covers Griffin-Lim's reach and the locked start's run."""
    torch.manual_seed(0)
    config = spectral_config(kmeans_init=True, griffin_lim_iters=4, phase_init=phase_init)
    codec = Codec(config)
    wav = chord(220.0, 8.0) + 0.02 * torch.randn(1, 1, 8 * RATE)
    with torch.no_grad():
        codec.train()(wav)
    codec.eval()
    codes = codec.encode(wav)
    margin = decoder_margin_blocks(config)
    assert codes.num_blocks > 2 * margin + 20  # some windows start inside the signal
    whole = codec.decode(codes)
    chunked = decode_codes(codec, codes, chunk_blocks=15)
    scale = float(whole.abs().max())
    torch.testing.assert_close(chunked, whole, atol=1e-3 * scale, rtol=0)
    if phase_init == "locked":  # the window's offset matters: without it, the start differs
        lo, hi = 37, codes.num_blocks
        unaware = codec.decode(codes.slice_blocks(lo, hi))
        aware = codec.decode(codes.slice_blocks(lo, hi), offset_blocks=lo)
        block = config.block_samples
        mid = slice((margin + 1) * block, (margin + 11) * block)
        torch.testing.assert_close(aware[..., mid], whole[..., lo * block :][..., mid])
        assert not torch.allclose(
            unaware[..., mid], whole[..., lo * block :][..., mid], atol=1e-3 * scale
        )


def test_spectral_output_length_equals_input_length():
    codec = Codec(spectral_config()).eval()
    for length in (1, 7, 300, 1001):
        wav = torch.randn(2, 1, length) * 0.1
        assert codec.decode(codec.encode(wav)).shape == (2, 1, length)
        assert codec(wav).wav.shape == (2, 1, length)


def test_decoder_depends_on_its_codes():
    """Time-shuffled codes decode worse than the true ones (the decoder uses its input)."""
    torch.manual_seed(0)
    codec = Codec(spectral_config(kmeans_init=True, ema_decay=0.9, quantizer_dropout=0.0))
    roots = [110.0 * 2 ** (k / 12) for k in range(12)]
    signals = [
        torch.cat([chord(r, 0.5, seed=k), chord(r * 1.5, 0.5, seed=k)], dim=-1)
        for k, r in enumerate(roots)
    ]
    _train(codec, signals, steps=60)
    wav = signals[3]
    codes = codec.encode(wav)
    z = codec.quantizer.decode(codes)
    order = torch.randperm(z.shape[-1], generator=torch.Generator().manual_seed(0))
    true = codec.decode_latent(z, wav.shape[-1])[0].numpy()
    shuffled = codec.decode_latent(z[..., order], wav.shape[-1])[0].numpy()
    ref = wav[0].numpy()
    assert chroma_correlation(ref, true, RATE) > chroma_correlation(ref, shuffled, RATE) + 0.1
    assert not math.isnan(float(true.sum()))


def test_chroma_loss_is_zero_on_the_input_and_grows_with_a_wrong_chord():
    loss = SpectralLoss(RATE, 512, 128, chroma_weight=1.0)
    wav = chord(220.0, 1.0)
    other = chord(311.1, 1.0)  # a tritone away: other pitch classes
    target = log_magnitude(wav, 512, 128)
    assert float(loss(target, wav)["chroma"]) < 1e-4
    assert float(loss(log_magnitude(other, 512, 128), wav)["chroma"]) > 0.5


def test_rendered_chroma_loss_has_finite_gradients_and_prefers_the_right_notes():
    loss = SpectralLoss(RATE, 512, 128, rendered_chroma_weight=1.0)
    wav = torch.cat([chord(220.0, 1.0), torch.zeros(1, 1, RATE)])  # a chord and digital silence
    right = log_magnitude(wav, 512, 128).requires_grad_(True)
    wrong = log_magnitude(torch.cat([chord(311.1, 1.0), torch.zeros(1, 1, RATE)]), 512, 128)
    terms = loss(right, wav)
    terms["total"].backward()
    assert torch.isfinite(right.grad).all()
    assert float(terms["rchroma"]) + 0.3 < float(loss(wrong, wav)["rchroma"])


def test_level_term_grows_with_how_much_too_quiet_and_pushes_the_level_up():
    """A prediction c below the target everywhere in the log domain has e^(-2c) of its mean
    power: the level term is 2c nepers, zero at c = 0, and its gradient raises every bin."""
    wav = torch.cat([chord(220.0, 0.5), 0.3 * chord(311.1, 0.5, seed=3)])  # (2, 1, T)
    target = log_magnitude(wav, 512, 128)
    loss_fn = SpectralLoss(RATE, 512, 128, level_weight=2.0)
    assert "level" not in SpectralLoss(RATE, 512, 128)(target, wav)  # default 0: no term
    levels = []
    for c in (0.0, 0.1, 0.5, 1.0):
        prediction = (target - c).requires_grad_()
        terms = loss_fn(prediction, wav)
        levels.append(float(terms["level"]))
        if c == 0:
            continue
        terms["level"].backward()
        assert (prediction.grad <= 0).all() and prediction.grad.sum() < 0
        stepped = loss_fn(prediction.detach() - 10.0 * prediction.grad, wav)
        assert float(stepped["level"]) < levels[-1]  # one descent step: louder, nearer
    assert levels[0] < 1e-5
    assert levels == pytest.approx([0.0, 0.2, 1.0, 2.0], abs=1e-4)
    without = SpectralLoss(RATE, 512, 128)(target - 1.0, wav)["total"]
    assert float(loss_fn(target - 1.0, wav)["total"] - without) == pytest.approx(4.0, rel=1e-4)


def test_level_gain_scales_only_the_operating_point_it_belongs_to():
    torch.manual_seed(0)
    codec = Codec(spectral_config(kmeans_init=True, ema_decay=0.9, quantizer_dropout=0.0))
    wav = chord(220.0)
    codec.train()(wav, num_levels=2)
    codec.eval()
    codes = codec.encode(wav)
    before = [codec.decode(codes.keep(k)) for k in (1, 2)]
    with torch.no_grad():
        codec.decoder.level_gain[1] = math.log(0.5)  # 2 levels: half the magnitude
    after = [codec.decode(codes.keep(k)) for k in (1, 2)]
    torch.testing.assert_close(after[0], before[0])  # 1 level: untouched
    ratio = after[1].pow(2).mean().sqrt() / before[1].pow(2).mean().sqrt()
    assert ratio == pytest.approx(0.5, rel=0.02)  # Griffin-Lim is linear in the magnitude


def test_codec_files_without_level_gain_load_with_zeros(tmp_path):
    from safetensors.torch import load_file, save_file

    from vqaudio.checkpoint import read_metadata
    from vqaudio.codec.io import load_codec, save_codec

    codec = Codec(spectral_config()).eval()
    path = tmp_path / "c.safetensors"
    save_codec(codec, path)
    state = load_file(str(path))
    del state["decoder.level_gain"]  # a file from before the gain
    save_file(state, str(path), metadata=read_metadata(path))
    loaded = load_codec(path)
    assert torch.equal(loaded.decoder.level_gain, torch.zeros(2))
    wav = chord(330.0)
    torch.testing.assert_close(loaded.decode(loaded.encode(wav)), codec.decode(codec.encode(wav)))


def test_band_matched_loss_ignores_a_band_gain_but_not_the_shape_within_a_band():
    """With ``band_span_frames`` the terms see the prediction scaled to the target's band levels,
    as a file's decode is: a wrong level per band costs nothing there (only the level term, which
    sees the raw prediction, notices), a wrong shape inside a band still costs."""
    wav = torch.cat([chord(220.0, 1.0), 0.3 * chord(311.1, 1.0, seed=3)])  # (2, 1, T)
    # a noise floor at -40 dB: no bin sits at LOG_FLOOR, where a log-domain gain is not a gain
    wav = wav + 0.01 * torch.randn(wav.shape, generator=torch.Generator().manual_seed(1))
    target = log_magnitude(wav, 512, 128)
    freqs = torch.arange(257) * RATE / 512
    gain = torch.where(freqs < 1000, -0.7, 0.4).view(-1, 1)  # nepers: -6 dB low, +3.5 dB high
    matched = SpectralLoss(RATE, 512, 128, level_weight=1.0, band_span_frames=20)
    plain = SpectralLoss(RATE, 512, 128, level_weight=1.0)
    exact, off = matched(target, wav), matched(target + gain, wav)
    for name in ("logmag", "mel", "sc"):
        assert float(off[name]) < float(exact[name]) + 0.01, name  # the gain is undone
        assert float(plain(target + gain, wav)[name]) > float(off[name]) + 0.1, name
    assert float(off["level"]) > 0.3  # the raw prediction is off in level, and the term says so
    smeared = target + 0.5 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    assert float(matched(smeared, wav)["logmag"]) > float(exact["logmag"]) + 0.2


def test_decode_renders_with_the_griffin_lim_iterations_asked_for():
    """decode(griffin_lim_iters=k) is the decode of the same weights configured for k iterations;
    more than the config's (whose reach sets the chunk margins) is refused."""
    torch.manual_seed(0)
    codec = Codec(spectral_config(kmeans_init=True)).eval()
    fewer = Codec(spectral_config(kmeans_init=True, griffin_lim_iters=3)).eval()
    fewer.load_state_dict(codec.state_dict())
    with torch.no_grad():
        codes = codec.encode(chord(220.0, 1.0))
        own, three = codec.decode(codes), codec.decode(codes, griffin_lim_iters=3)
        assert torch.equal(three, fewer.decode(codes))
        assert (own - three).abs().max() > 1e-3  # the count changes the rendering
        with pytest.raises(ConfigError, match="griffin_lim_iters 17"):
            codec.decode(codes, griffin_lim_iters=17)
