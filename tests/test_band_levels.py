"""Band levels (format 5): measured from the input, coded per chunk, scaled to by the decoder."""

import dataclasses

import numpy as np
import pytest
import torch

from vqaudio import audio
from vqaudio.codec import Codec, band_levels
from vqaudio.errors import FormatError
from vqaudio.vqa import band_levels as coding
from vqaudio.vqa.compress import compress, decompress
from vqaudio.vqa.container import VqaReader
from vqaudio.vqa.header import Header

from .test_spectral import RATE, chord, spectral_config


def test_values_round_trip_and_bad_sections_are_refused():
    rng = np.random.default_rng(0)
    for _ in range(50):
        shape = tuple(int(n) for n in rng.integers(1, 6, size=3))
        values = rng.integers(coding.MIN_DB, coding.MAX_DB + 1, size=shape)
        data = coding.encode_values(values)
        assert len(data) <= -(-values.size * coding.MAX_VALUE_BITS // 8)
        assert coding.decode_values(data, shape).tolist() == values.tolist()
    extremes = np.array([[[coding.MIN_DB, coding.MAX_DB, coding.MIN_DB]]])
    data = coding.encode_values(extremes)
    assert coding.decode_values(data, (1, 1, 3)).tolist() == extremes.tolist()
    with pytest.raises(FormatError):
        coding.decode_values(data[:-1], (1, 1, 3))  # ends early
    with pytest.raises(FormatError):
        coding.decode_values(data + b"\x00", (1, 1, 3))  # a byte too many
    with pytest.raises(FormatError):
        coding.decode_values(b"\x00\x00\x00", (1, 1, 1))  # a prefix longer than any value
    steady = np.full((1, 4, 25), -30)  # a steady level: 2 bits per value, 8 for each first
    assert len(coding.encode_values(steady)) == (4 * 24 * 2 + 4 * 8) // 8


def test_measured_level_of_a_sine_is_its_power_in_its_band():
    rate, hop = 24000, 480
    t = torch.arange(rate * 2) / rate
    wav = (0.5 * torch.sin(2 * torch.pi * 440.0 * t))[None]  # power 0.125: -9.03 dB
    spans = band_levels.spans(0, 25, 5)
    values = band_levels.measure(wav, rate, hop, 4, band_levels.EDGES_HZ, spans)
    assert values.shape == (1, 4, 5)
    assert np.abs(values[0, 0, 1:-1] + 9).max() <= 1  # inner spans: no edge effects
    assert values[0, 1:].max() < -40  # nothing in the other bands


def test_apply_scales_each_band_to_the_sent_power():
    rate, n_fft = 8000, 256
    torch.manual_seed(0)
    magnitude = torch.rand(1, n_fft // 2 + 1, 81) + 0.1
    edges = (0, 1000, 2500)
    spans = band_levels.spans(0, 20, 5)  # 4 frames per block: spans of 20 frames
    frames = spans * 4
    before = band_levels.span_power_db(magnitude.pow(2), edges, n_fft, rate, frames)
    sent = (before.round() + torch.tensor([6.0, -3.0, 0.0])[None, :, None]).to(torch.int16)
    levels = band_levels.BandLevels(sent.numpy(), spans, edges, 4)
    after = band_levels.span_power_db(
        band_levels.apply(magnitude, levels, n_fft, rate).pow(2), edges, n_fft, rate, frames
    )
    # linear interpolation between span centres moves each span's mean a little; within 0.5 dB
    assert (after - sent.float()).abs().max() < 0.5


def test_header_needs_spans_that_divide_the_chunk():
    header = Header(
        codec_id="0123456789abcdef",
        code_space_id="fedcba9876543210",
        sample_rate=8000,
        channels=1,
        num_samples=1000,
        source_sample_rate=8000,
        source_num_samples=1000,
        hop_length=8,
        codebook_size=16,
        level_strides=(2, 1),
        levels_per_channel=(2,),
        channel_coding="mono",
        chunk_blocks=20,
        entropy_coder="none",
        bitrate=6000.0,
        band_edges=(0, 1000),
        band_span_blocks=5,
    )
    for bad in ({"band_span_blocks": 3}, {"band_span_blocks": 0}, {"band_edges": (100, 1000)}):
        with pytest.raises(FormatError, match=f"header field {next(iter(bad))} "):
            dataclasses.replace(header, **bad)
    with pytest.raises(FormatError, match="band_edges"):
        dataclasses.replace(header, band_edges=(0, 4000))  # at Nyquist
    with pytest.raises(FormatError, match="band_span_blocks"):
        dataclasses.replace(header, band_edges=())  # spans without bands
    assert dataclasses.replace(header, band_edges=(), band_span_blocks=0).to_bytes(4)


def test_decoded_level_follows_the_sent_levels(tmp_path, monkeypatch):
    """An untrained decoder renders at a level of its own; with the file's band levels its
    output has the input's level, and a file without them decodes as before."""
    monkeypatch.setattr(band_levels, "MAX_GAIN_DB", 60.0)  # the untrained one is 40 dB off
    torch.manual_seed(0)
    codec = Codec(spectral_config(kmeans_init=True, griffin_lim_iters=8)).eval()
    wav = chord(220.0, 3.0) * 0.5
    audio.write(tmp_path / "a.wav", wav[0].numpy(), RATE)
    levels = {}
    for with_levels in (True, False):
        out = tmp_path / f"{with_levels}.vqa"
        compress(codec, tmp_path / "a.wav", out, bitrate=1e5, with_band_levels=with_levels)
        with VqaReader(out) as reader:
            assert bool(reader.header.band_edges) == with_levels
        decompress(out, tmp_path / f"{with_levels}.wav", codec)
        decoded, _ = audio.read(tmp_path / f"{with_levels}.wav")
        levels[with_levels] = 10 * np.log10(np.mean(decoded**2) / np.mean(wav.numpy() ** 2))
    assert abs(levels[True]) < 1.0, levels
    assert abs(levels[False]) > 3.0, levels  # what the untrained decoder does on its own


@pytest.mark.parametrize("resolution", ["16x0.08", "8x0.4"])
def test_finer_band_resolutions_round_trip_and_follow_the_input(tmp_path, monkeypatch, resolution):
    """compress(band_resolution=...) records its edges and span in the file; the decode reads
    them from there and its level follows the input as with the default 4 bands."""
    monkeypatch.setattr(band_levels, "MAX_GAIN_DB", 60.0)
    torch.manual_seed(0)
    codec = Codec(spectral_config(kmeans_init=True, griffin_lim_iters=8)).eval()
    wav = chord(220.0, 3.0) * 0.5
    audio.write(tmp_path / "a.wav", wav[0].numpy(), RATE)
    compress(codec, tmp_path / "a.wav", tmp_path / "a.vqa", bitrate=1e5, band_resolution=resolution)
    with VqaReader(tmp_path / "a.vqa") as reader:
        header = reader.header
    assert header.band_edges == band_levels.band_edges(RATE, resolution)
    assert len(header.band_edges) > 4  # more bands than the default below 4 kHz
    block_seconds = codec.config.block_samples / RATE
    want = band_levels.RESOLUTIONS[resolution][1]
    assert abs(header.band_span_blocks * block_seconds - want) <= block_seconds
    decompress(tmp_path / "a.vqa", tmp_path / "a.wav.out.wav", codec)
    decoded, _ = audio.read(tmp_path / "a.wav.out.wav")
    assert decoded.shape[-1] == wav.shape[-1]
    assert abs(10 * np.log10(np.mean(decoded**2) / np.mean(wav.numpy() ** 2))) < 1.0


def test_auto_resolution_sends_fine_levels_unless_they_cost_a_code_level(tmp_path, monkeypatch):
    """compress's default: the fine band levels where the budget has room for them beside the
    same code levels, the coarse ones where the fine would cost a level or overrun the budget."""
    fine, coarse = "16x0.08", "4x0.4"  # a very fine one, so that it matters at these rates
    monkeypatch.setattr(band_levels, "AUTO_RESOLUTIONS", (fine, coarse))
    torch.manual_seed(0)
    codec = Codec(spectral_config(kmeans_init=True, griffin_lim_iters=8)).eval()
    audio.write(tmp_path / "a.wav", (chord(220.0, 3.0) * 0.5)[0].numpy(), RATE)
    seen = set()
    for bitrate in (400, 600, 1200):
        got = {}
        for resolution in (fine, coarse, "auto"):
            out = tmp_path / f"{resolution}.vqa"
            header = compress(
                codec, tmp_path / "a.wav", out, bitrate=bitrate, band_resolution=resolution
            )
            got[resolution] = (header.levels_per_channel, header.band_edges, out.stat().st_size)
        levels, edges, size = got["auto"]
        assert levels == max(got[fine][0], got[coarse][0])  # never a level fewer
        assert size * 8 / 3.0 <= bitrate or size == got[coarse][2]  # within budget, or smallest
        pick = fine if edges == band_levels.band_edges(RATE, fine) else coarse
        assert got[pick][:2] == (levels, edges)
        if got[fine][0] == got[coarse][0] and got[fine][2] * 8 / 3.0 <= bitrate:
            assert pick == fine  # room for both: the fine ones
        seen.add(pick)
    assert seen == {fine, coarse}  # both cases came up
