"""compress/decompress: chunking leaves no trace, seeking works, rates hold, odd audio works."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from vqaudio import audio
from vqaudio.codec import Codec
from vqaudio.codec.io import load_codec, save_codec
from vqaudio.config import CodecConfig
from vqaudio.errors import AudioError, ConfigError, FormatError
from vqaudio.vqa.compress import compress, decode_chunks, decompress
from vqaudio.vqa.container import VqaReader
from vqaudio.vqa.rate import plan_levels

from .conftest import diverse_codec, harmonic, tiny_codec_config


@pytest.fixture(scope="module")
def codec_path(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("codec") / "codec.safetensors"
    save_codec(diverse_codec(), path)
    return path


@pytest.fixture(scope="module")
def codec(codec_path):
    return load_codec(codec_path)


def _music(path, seconds, sample_rate=8000, channels=1, seed=0):
    n = int(seconds * sample_rate)
    wav = np.concatenate(
        [harmonic(n, sample_rate, 110 * (c + 2), seed + c)[0].numpy() for c in range(channels)]
    )
    noise = np.random.default_rng(seed).standard_normal(wav.shape).astype(np.float32)
    audio.write(path, wav + 0.02 * noise, sample_rate)
    return path


def _all_codes(path):
    with VqaReader(path) as reader:
        chunks = [reader.read_chunk(k) for k in range(reader.num_chunks)]
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]


def test_codes_do_not_depend_on_chunk_boundaries(tmp_path, codec):
    src = _music(tmp_path / "a.wav", 3.0)
    compress(codec, src, tmp_path / "small.vqa", bitrate=1e5, chunk_blocks=7)
    compress(codec, src, tmp_path / "big.vqa", bitrate=1e5, chunk_blocks=41)
    wav, _ = audio.read(src)
    one_pass = codec.encode(torch.from_numpy(wav)[None])
    small, big = _all_codes(tmp_path / "small.vqa"), _all_codes(tmp_path / "big.vqa")
    for level, (s, b) in enumerate(zip(small, big, strict=False)):
        reference = one_pass.levels[level][0].numpy()
        assert (s == reference).mean() >= 0.999
        assert (b == reference).mean() >= 0.999


def test_chunked_decoding_has_no_seams_and_seeking_matches(tmp_path, codec):
    src = _music(tmp_path / "a.wav", 2.0)
    compress(codec, src, tmp_path / "a.vqa", bitrate=1e5, chunk_blocks=5)
    with VqaReader(tmp_path / "a.vqa") as reader:
        pieces = list(decode_chunks(reader, codec))
        full = np.concatenate(pieces, axis=1)
        for k in (0, 3, reader.num_chunks - 1):
            np.testing.assert_array_equal(next(decode_chunks(reader, codec, k, k + 1)), pieces[k])
    with VqaReader(tmp_path / "a.vqa") as reader:
        codes = [torch.from_numpy(c)[None] for c in _all_codes(tmp_path / "a.vqa")]
        from vqaudio.codes import Codes

        one_pass = codec.decode(Codes(codes, (2, 1), reader.header.num_samples))[0].numpy()
    assert full.shape == one_pass.shape
    np.testing.assert_allclose(full, one_pass, atol=1e-5)


def test_same_input_compresses_to_identical_bytes(tmp_path, codec, codec_path):
    src = _music(tmp_path / "a.wav", 1.0, channels=2)
    compress(codec, src, tmp_path / "a.vqa", chunk_blocks=9)
    # The second run is a fresh process: nothing this one holds (RNG state, caches) can help.
    script = (
        "import sys, torch; torch.set_num_threads(1)\n"
        "from vqaudio.codec.io import load_codec\n"
        "from vqaudio.vqa.compress import compress\n"
        "compress(load_codec(sys.argv[1]), sys.argv[2], sys.argv[3], chunk_blocks=9)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, codec_path, src, tmp_path / "b.vqa"],
        check=True,
        timeout=300,
    )
    assert (tmp_path / "a.vqa").read_bytes() == (tmp_path / "b.vqa").read_bytes()


@pytest.mark.parametrize("entropy_coded", [True, False])
@pytest.mark.parametrize("channels", [1, 2])
def test_real_bitrate_is_at_most_the_advertised_one(tmp_path, codec, entropy_coded, channels):
    src = _music(tmp_path / "a.wav", 4.0, channels=channels)
    for bitrate in (3000.0 * channels, 12000.0, 24000.0):
        out = tmp_path / "a.vqa"
        header = compress(codec, src, out, bitrate=bitrate, entropy_coded=entropy_coded)
        assert 8 * out.stat().st_size / header.duration <= bitrate


def test_round_trip_keeps_rate_channels_and_length_and_sounds_alike(tmp_path, codec):
    src = _music(tmp_path / "a.wav", 1.5, sample_rate=22050, channels=2)
    compress(codec, src, tmp_path / "a.vqa", bitrate=40000)
    decompress(tmp_path / "a.vqa", tmp_path / "b.flac", codec)
    info = audio.info(tmp_path / "b.flac")
    assert (info.sample_rate, info.channels, info.num_samples) == (22050, 2, int(1.5 * 22050))
    decompress(tmp_path / "a.vqa", tmp_path / "c.wav", codec, sample_rate=16000)
    assert audio.info(tmp_path / "c.wav").sample_rate == 16000


def test_stereo_channels_stay_in_place(tmp_path, codec):
    """Music on the left, silence on the right: mid = side = music / 2 share their first level's
    codes, so R = mid - side decodes to (almost) nothing and L = mid + side to the music, even
    with this untrained decoder. A swap of L and R, or a mid/side sign mix-up, puts the energy in
    the wrong channel (rate, channel count and length alone cannot see it)."""
    loud = 0
    music = harmonic(12000, 8000)[0, 0].numpy()
    wav = np.zeros((2, music.size), dtype=np.float32)
    wav[loud] = music
    audio.write(tmp_path / "a.wav", wav, 8000)
    compress(codec, tmp_path / "a.wav", tmp_path / "a.vqa", bitrate=6000)
    decompress(tmp_path / "a.vqa", tmp_path / "b.wav", codec)
    rms = np.sqrt((audio.read(tmp_path / "b.wav")[0] ** 2).mean(axis=1))
    assert rms[loud] > 0.01 and rms[loud] > 5 * rms[1 - loud], rms


@pytest.mark.parametrize(
    "num_samples, sample_rate, channels, subtype, kind",
    [
        (1, 8000, 1, "PCM_16", "noise"),
        (80, 8000, 1, "PCM_16", "noise"),  # 10 ms
        (4000, 8000, 1, "PCM_16", "silence"),
        (4000, 8000, 1, "PCM_U8", "noise"),  # 8-bit
        (800, 8000, 6, "PCM_16", "noise"),
        (9600, 192000, 2, "PCM_24", "noise"),
        (4000, 8000, 2, "PCM_16", "clipped"),
    ],
)
def test_odd_but_valid_audio(tmp_path, codec, num_samples, sample_rate, channels, subtype, kind):
    rng = np.random.default_rng(0)
    wav = {
        "noise": 0.3 * rng.standard_normal((num_samples, channels)),
        "silence": np.zeros((num_samples, channels)),
        "clipped": np.clip(3 * rng.standard_normal((num_samples, channels)), -1, 1),
    }[kind]
    sf.write(tmp_path / "in.wav", wav, sample_rate, subtype=subtype)
    compress(codec, tmp_path / "in.wav", tmp_path / "a.vqa", bitrate=1e5)
    decompress(tmp_path / "a.vqa", tmp_path / "out.wav", codec)
    back, rate = sf.read(tmp_path / "out.wav", always_2d=True)
    assert back.shape == (num_samples, channels) and rate == sample_rate
    assert np.all(np.isfinite(back))


def test_codec_mismatch_names_both_ids(tmp_path, codec, codec_path):
    src = _music(tmp_path / "a.wav", 0.5)
    compress(codec, src, tmp_path / "song.vqa")
    torch.manual_seed(1)
    other_path = tmp_path / "other.safetensors"
    save_codec(Codec(tiny_codec_config()), other_path)
    other = load_codec(other_path)
    with pytest.raises(FormatError) as e:
        decompress(tmp_path / "song.vqa", tmp_path / "out.wav", other)
    assert codec.checkpoint_id[:8] in str(e.value) and other.checkpoint_id[:8] in str(e.value)
    assert "--codec" in str(e.value)
    assert not (tmp_path / "out.wav").exists()


def test_decompress_checks_the_codec_once(tmp_path, codec, monkeypatch):
    """An unsaved codec's id hashes all its weights: decompress asks for it once, not per layer."""
    src = _music(tmp_path / "a.wav", 0.5)
    unsaved = Codec(codec.config).eval()
    unsaved.load_state_dict(codec.state_dict())
    compress(unsaved, src, tmp_path / "song.vqa")
    calls = []
    module = sys.modules["vqaudio.codec.code_space"]  # where the codec check asks for its id
    hash_weights = module.checkpoint_id
    monkeypatch.setattr(module, "checkpoint_id", lambda m: calls.append(m) or hash_weights(m))
    decompress(tmp_path / "song.vqa", tmp_path / "out.wav", unsaved)
    assert len(calls) == 1
    with VqaReader(tmp_path / "song.vqa") as reader:  # decode_chunks alone still checks
        assert len(list(decode_chunks(reader, unsaved))) == reader.num_chunks and len(calls) == 2


def test_bad_audio_leaves_no_output(tmp_path, codec):
    wav = np.zeros((1, 8000), dtype=np.float32)
    wav[0, 7000] = np.nan
    sf.write(tmp_path / "nan.wav", wav.T, 8000, subtype="FLOAT")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1)), 8000)
    (tmp_path / "text.wav").write_text("not audio")
    for name in ("nan.wav", "empty.wav", "text.wav", "missing.wav"):
        with pytest.raises(AudioError):
            compress(codec, tmp_path / name, tmp_path / "out.vqa", chunk_blocks=5)
        assert not (tmp_path / "out.vqa").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.wav", "nan.wav", "text.wav"]


def test_bitrate_plan_splits_the_whole_file_rate_across_channels():
    config = CodecConfig()  # 1.5 / 3 / 6 kbps = 5 / 8 / 14 levels per channel
    assert plan_levels(config, 1, 6000) == ("mono", [14])
    coding, levels = plan_levels(config, 2, 6000)
    assert coding == "mid_side" and levels[0] > levels[1] >= 1
    assert sum(config.bitrates[n - 1] for n in levels) <= 6000
    coding, levels = plan_levels(config, 6, 6000)
    assert coding == "separate" and sum(config.bitrates[n - 1] for n in levels) <= 6000
    with pytest.raises(ConfigError, match="lowest operating point"):
        plan_levels(config, 6, 500)
    # exactly the lowest point: fine for a 1 s clip, refused for a minute (overhead would exceed)
    assert plan_levels(config, 1, config.bitrates[0], duration=1.0) == ("mono", [1])
    with pytest.raises(ConfigError, match="container overhead"):
        plan_levels(config, 1, config.bitrates[0], duration=60.0)


def test_entropy_coding_spends_its_savings_on_more_levels(tmp_path, codec):
    """At the same budget, an entropy-coded file keeps at least the fixed-width file's levels
    (more when codes are skewed) and still stays at or under the bitrate."""
    config = codec.config
    src = _music(tmp_path / "a.wav", 12.0)
    bitrate = config.bitrates[1] * 1.05
    fixed = compress(codec, src, tmp_path / "fixed.vqa", bitrate=bitrate, entropy_coded=False)
    coded = compress(codec, src, tmp_path / "coded.vqa", bitrate=bitrate, entropy_coded=True)
    assert coded.levels_per_channel[0] >= fixed.levels_per_channel[0]
    assert 8 * (tmp_path / "coded.vqa").stat().st_size / coded.duration <= bitrate
    quiet = tmp_path / "quiet.wav"  # near-silence: a few codes dominate, entropy coding shines
    audio.write(quiet, 0.001 * audio.read(src)[0], 8000)
    budget = config.bitrates[-1] * 0.8  # all levels do not fit fixed-width
    few = compress(codec, quiet, tmp_path / "f.vqa", bitrate=budget, entropy_coded=False)
    many = compress(codec, quiet, tmp_path / "m.vqa", bitrate=budget, entropy_coded=True)
    assert few.levels_per_channel[0] < many.levels_per_channel[0] == config.num_levels
    assert 8 * (tmp_path / "m.vqa").stat().st_size / many.duration <= budget


def test_decoded_files_get_ordinary_permissions(tmp_path, codec):
    import os

    src = _music(tmp_path / "a.wav", 1.0)
    compress(codec, src, tmp_path / "a.vqa", bitrate=24000)
    decompress(tmp_path / "a.vqa", tmp_path / "b.wav", codec)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "b.wav").stat().st_mode & 0o777 == 0o666 & ~umask
