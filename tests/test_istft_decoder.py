"""The inverse-STFT decoder and decoder-only training on a frozen encoder and quantizer."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vqaudio.checkpoint import checkpoint_id
from vqaudio.codec import Codec
from vqaudio.codec.io import load_codec, save_codec
from vqaudio.codec.losses import MultiScaleMelLoss, ReconstructionLoss
from vqaudio.errors import ConfigError
from vqaudio.recipe import load_recipe
from vqaudio.train import train

from .conftest import (
    assert_chunked_decode_is_one_pass,
    diverse_codec,
    harmonic,
    tiny_codec_config,
)
from .test_train import RECIPES, tiny_overrides, write_songs


def istft_config(**overrides):
    base = dict(decoder="istft", istft_dim=32, istft_layers=2, istft_upsample=4)
    base.update(overrides)
    return tiny_codec_config(**base)


def test_istft_decoder_uses_every_level_and_is_deterministic():
    torch.manual_seed(0)
    codec = Codec(istft_config(level_strides=(4, 2, 1, 1), kmeans_init=True))
    wav = harmonic(4000, 8000) + 0.02 * torch.randn(1, 1, 4000)
    with torch.no_grad():
        codec.train()(wav)
    codec.eval()
    codes = codec.encode(wav)
    outs = [codec.decode(codes.keep(k)) for k in range(1, 5)]
    for a, b in zip(outs, outs[1:]):
        assert not torch.equal(a, b)
    assert torch.equal(codec.decode(codes), outs[-1])


def test_istft_decoder_learns_a_harmonic_signal():
    """Trained alone on fixed codes for 150 steps, the decoder must halve its mel distance."""
    torch.manual_seed(0)
    codec = diverse_codec()
    config = istft_config(kmeans_init=True)
    fresh = Codec(config)
    fresh.encoder.load_state_dict(codec.encoder.state_dict())
    fresh.quantizer.load_state_dict(codec.quantizer.state_dict())
    fresh.freeze("encoder", "quantizer")
    clips = torch.cat([harmonic(1024, 8000, f0=f, seed=i) for i, f in enumerate((110, 220))])
    mel = MultiScaleMelLoss(config.sample_rate)
    loss_fn = ReconstructionLoss(config.sample_rate, stft_weight=0.0)
    with torch.no_grad():
        before = float(mel(fresh.eval()(clips).wav, clips))
    fresh.train()
    opt = torch.optim.Adam([p for p in fresh.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(150):
        loss = loss_fn(fresh(clips).wav, clips)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(mel(fresh.decode(fresh.encode(clips)), clips))
    assert after <= 0.5 * before, (before, after)


def test_frozen_parts_do_not_change_and_codes_stay_identical():
    torch.manual_seed(0)
    codec = Codec(istft_config(kmeans_init=True, dead_code_threshold=0.5))
    wav = harmonic(4000, 8000) + 0.05 * torch.randn(1, 1, 4000)
    with torch.no_grad():
        codec.train()(wav)  # k-means initialised, BatchNorm statistics moved
    frozen = {k: v.clone() for k, v in codec.state_dict().items() if not k.startswith("decoder.")}
    decoder = {k: v.clone() for k, v in codec.decoder.state_dict().items()}
    codes_before = codec.eval().encode(wav)
    codec.freeze("encoder", "quantizer")
    codec.train()
    assert not codec.encoder.training and not codec.quantizer.training and codec.decoder.training
    opt = torch.optim.Adam(codec.parameters(), lr=1e-2)
    for seed in range(3):
        batch = wav + 0.1 * torch.randn(4, 1, 4000, generator=torch.Generator().manual_seed(seed))
        out = codec(batch)
        (out.wav.abs().mean() + out.vq_loss).backward()
        opt.step()
        opt.zero_grad()
    for k, v in codec.state_dict().items():
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
    assert any(not torch.equal(v, decoder[k]) for k, v in codec.decoder.state_dict().items())
    codes_after = codec.eval().encode(wav)
    assert all(torch.equal(a, b) for a, b in zip(codes_before.levels, codes_after.levels))


def test_half_storage_keeps_codes_exact_and_halves_only_the_decoder(tmp_path):
    torch.manual_seed(0)
    codec = Codec(istft_config(kmeans_init=True))
    wav = harmonic(4000, 8000) + 0.05 * torch.randn(1, 1, 4000)
    with torch.no_grad():
        codec.train()(wav)
    codec.eval()
    save_codec(codec, tmp_path / "full.safetensors")
    save_codec(codec, tmp_path / "half.safetensors", half=True)
    stored = load_file(tmp_path / "half.safetensors")
    assert all(
        (v.dtype == torch.float16) == k.startswith("decoder.")
        for k, v in stored.items()
        if v.is_floating_point()
    )
    full_size = (tmp_path / "full.safetensors").stat().st_size
    assert (tmp_path / "half.safetensors").stat().st_size < 0.75 * full_size
    half = load_codec(tmp_path / "half.safetensors")
    a, b = codec.encode(wav), half.encode(wav)
    assert all(torch.equal(x, y) for x, y in zip(a.levels, b.levels))
    torch.testing.assert_close(half.decode(b), codec.decode(a), atol=2e-3, rtol=0)
    assert torch.equal(half.decode(b), half.decode(b))


def test_istft_chunked_decoding_matches_one_pass(tmp_path):
    torch.manual_seed(0)
    codec = Codec(istft_config(kmeans_init=True))
    n = 16000
    wav = harmonic(n, 8000) + 0.02 * torch.randn(1, 1, n)
    with torch.no_grad():
        codec.train()(wav)
    codec.eval()
    assert_chunked_decode_is_one_pass(codec, wav, 8000, tmp_path, chunk_blocks=5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"decoder": "wavernn"}, "codec.decoder must be"),
        ({"decoder": "istft", "istft_upsample": 5}, "istft_upsample must divide"),
    ],
)
def test_bad_decoder_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        istft_config(**overrides)


def test_freeze_needs_init_from(tmp_path):
    with pytest.raises(ConfigError, match="train.freeze needs init_from"):
        load_recipe(RECIPES / "tiny-codec.yaml", ["train.freeze=[encoder, quantizer]"])
    with pytest.raises(ConfigError, match="may name encoder and quantizer"):
        load_recipe(RECIPES / "tiny-codec.yaml", ["train.freeze=[decoder]"])


def test_decoder_recipe_trains_a_new_decoder_on_the_same_codes(tmp_path):
    songs = write_songs(tmp_path / "songs")
    sets = tiny_overrides(tmp_path, songs)
    start = Path(train(load_recipe(RECIPES / "tiny-codec.yaml", sets), tmp_path / "stage1"))
    stage2 = load_recipe(
        RECIPES / "tiny-codec.yaml",
        sets
        + [
            f"init_from={start}",
            "train.freeze=[encoder, quantizer]",
            "codec.decoder=istft",
            "codec.istft_dim=32",
            "codec.istft_layers=2",
        ],
    )
    second = load_codec(train(stage2, tmp_path / "stage2"))
    first = load_codec(start)
    assert second.config.decoder == "istft"
    wav = harmonic(8000, first.sample_rate)
    a, b = first.encode(wav), second.encode(wav)
    assert all(torch.equal(x, y) for x, y in zip(a.levels, b.levels))
    # the same code space, and the first codec's files and priors stay valid
    assert second.code_space_id == first.code_space_id
    assert first.checkpoint_id in second.code_space_codecs
    # a frozen part that does not fit is refused, naming it
    bad = load_recipe(
        RECIPES / "tiny-codec.yaml",
        sets + [f"init_from={start}", "train.freeze=[encoder]", "codec.latent_dim=8"],
    )
    with pytest.raises(ConfigError, match=r"frozen parts \(encoder\) do not fit"):
        train(bad, tmp_path / "stage3")


def test_half_file_leaves_out_ema_statistics_and_restores_them(tmp_path):
    torch.manual_seed(0)
    codec = Codec(istft_config(codebook_dim=0, l2_normalize=False, ema_decay=0.9, kmeans_init=True))
    wav = harmonic(4000, 8000) + 0.05 * torch.randn(1, 1, 4000)
    with torch.no_grad():
        codec.train()(wav)
    codec.eval()
    save_codec(codec, tmp_path / "half.safetensors", half=True)
    stored = load_file(tmp_path / "half.safetensors")
    assert not any(k.endswith((".ema_sum", ".ema_count")) for k in stored)
    half = load_codec(tmp_path / "half.safetensors")
    for vq in half.quantizer.levels:  # statistics restart from the codebook: EMA keeps going
        torch.testing.assert_close(vq.ema_sum, vq.codebook)
        assert torch.equal(vq.ema_count, torch.ones_like(vq.ema_count))
    a, b = codec.encode(wav), half.encode(wav)
    assert all(torch.equal(x, y) for x, y in zip(a.levels, b.levels))


def test_a_compact_inference_file_can_start_a_frozen_run(tmp_path):
    """The shipped codec (float16 decoder, no EMA statistics) is a valid init_from."""
    songs = write_songs(tmp_path / "songs")
    ema = ["codec.codebook_dim=0", "codec.l2_normalize=false", "codec.ema_decay=0.9"]
    sets = tiny_overrides(tmp_path, songs) + ema
    start = load_codec(train(load_recipe(RECIPES / "tiny-codec.yaml", sets), tmp_path / "stage1"))
    save_codec(start, tmp_path / "compact.safetensors", half=True)
    stage2 = load_recipe(
        RECIPES / "tiny-codec.yaml",
        sets
        + [f"init_from={tmp_path / 'compact.safetensors'}", "train.freeze=[encoder, quantizer]"],
    )
    second = load_codec(train(stage2, tmp_path / "stage2"))
    wav = harmonic(8000, start.sample_rate)
    a, b = start.encode(wav), second.encode(wav)
    assert all(torch.equal(x, y) for x, y in zip(a.levels, b.levels))
    assert second.code_space_id == start.code_space_id
    assert checkpoint_id(tmp_path / "compact.safetensors") in second.code_space_codecs
