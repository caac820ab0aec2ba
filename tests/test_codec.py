import math

import pytest
import torch

from vqaudio.codec import Codec
from vqaudio.codec.losses import MultiScaleMelLoss, ReconstructionLoss
from vqaudio.config import CodecConfig
from vqaudio.errors import ConfigError

from .conftest import harmonic, tiny_codec_config

DECODERS = {
    "conv": dict(strides=(3, 5)),
    "istft": dict(strides=(3, 4), decoder="istft", istft_dim=32, istft_layers=2),
}


@pytest.mark.parametrize("decoder", list(DECODERS))
@pytest.mark.parametrize("length", [1, 7, 63, 64, 257, 1001])
def test_output_length_equals_input_length(length, decoder):
    codec = Codec(tiny_codec_config(level_strides=(4, 2, 1), **DECODERS[decoder])).eval()
    wav = torch.randn(2, 1, length) * 0.1
    assert codec.decode(codec.encode(wav)).shape == (2, 1, length)
    assert codec(wav).wav.shape == (2, 1, length)


def test_same_input_gives_identical_codes():
    torch.manual_seed(0)
    codec = Codec(tiny_codec_config()).eval()
    wav = torch.randn(1, 1, 999) * 0.3
    first, second = codec.encode(wav), codec.encode(wav.clone())
    assert all(torch.equal(a, b) for a, b in zip(first.levels, second.levels))


def test_decoding_every_prefix_of_levels():
    config = tiny_codec_config(level_strides=(4, 2, 1, 1))
    codec = Codec(config).eval()
    wav = torch.randn(1, 1, 500) * 0.1
    codes = codec.encode(wav)
    previous = None
    for k in range(1, config.num_levels + 1):
        out = codec.decode(codes.keep(k))
        assert out.shape == wav.shape and torch.isfinite(out).all()
        if previous is not None:
            assert not torch.equal(out, previous)  # each level adds something
        previous = out


def test_bitrate_selects_level_prefix_and_matches_config():
    config = CodecConfig()  # the default: 24 kHz, 50 frames/s, 10-bit codes
    assert config.frame_rate == 50
    bits = math.log2(config.codebook_size)
    expected = [sum(50 / s * bits for s in config.level_strides[: k + 1]) for k in range(14)]
    assert config.bitrates == pytest.approx(expected)
    assert config.bitrates[config.levels_for_bitrate(1500) - 1] == pytest.approx(1500)
    assert config.bitrates[config.levels_for_bitrate(3000) - 1] == pytest.approx(3000)
    assert config.bitrates[config.levels_for_bitrate(6000) - 1] == pytest.approx(6000)
    assert config.levels_for_bitrate(2999) == config.levels_for_bitrate(3000) - 1
    with pytest.raises(ConfigError, match="below this codec's lowest"):
        config.levels_for_bitrate(50)
    codec = Codec(tiny_codec_config(level_strides=(2, 1, 1)))
    codes = codec.encode(torch.zeros(1, 1, 800), bitrate=codec.bitrates[1])
    assert codes.num_levels == 2


def test_quantizer_dropout_varies_levels_per_item():
    torch.manual_seed(0)
    codec = Codec(tiny_codec_config(level_strides=(1, 1, 1, 1), quantizer_dropout=1.0)).train()
    wav = torch.randn(16, 1, 256)
    a = codec(wav).wav
    codec.eval()
    full = codec(wav).wav
    # with dropout every item keeps a random prefix, so some items differ from the full decode
    assert not torch.allclose(a, full)


def test_mel_loss_is_zero_for_identical_and_positive_otherwise():
    loss = MultiScaleMelLoss(8000)
    wav = harmonic(4000, 8000)
    assert float(loss(wav, wav)) == 0.0
    assert float(loss(wav * 0.5, wav)) > 0.1


def test_tiny_codec_learns_harmonic_signal():
    """~200 steps on a harmonic tone must halve the mel loss: fails if the STE or VQ is broken."""
    torch.manual_seed(0)
    config = tiny_codec_config(
        encoder_dim=16,
        decoder_dim=32,
        level_strides=(2, 1, 1),
        codebook_size=32,
        kmeans_init=True,
        quantizer_dropout=0.0,
    )
    codec = Codec(config)
    loss_fn = ReconstructionLoss(config.sample_rate, stft_weight=0.0)
    mel = MultiScaleMelLoss(config.sample_rate)
    clips = torch.cat(
        [harmonic(1024, 8000, f0=f, seed=i) for i, f in enumerate((110, 165, 220, 330))]
    )
    codec.eval()
    with torch.no_grad():
        before = float(mel(codec(clips).wav, clips))
    codec.train()
    opt = torch.optim.Adam(codec.parameters(), lr=3e-3)
    for _ in range(200):
        out = codec(clips)
        loss = loss_fn(out.wav, clips)["total"] + out.vq_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    codec.eval()
    with torch.no_grad():
        after = float(mel(codec.decode(codec.encode(clips)), clips))
    assert after <= 0.5 * before, (before, after)


def test_latent_norm_can_be_left_out():
    with_norm = Codec(tiny_codec_config())
    without = Codec(tiny_codec_config(latent_norm="none"))
    norms = [m for m in without.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert not norms and any(isinstance(m, torch.nn.BatchNorm1d) for m in with_norm.modules())
    wav = torch.randn(1, 1, 500) * 0.1
    assert without.eval().decode(without.encode(wav)).shape == wav.shape
    with pytest.raises(ConfigError, match="latent_norm"):
        tiny_codec_config(latent_norm="layer")
