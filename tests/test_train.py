"""Training: tiny recipes end to end on synthetic audio, exact resume, bad recipes via the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from vqaudio.checkpoint import checkpoint_id
from vqaudio.codec.io import load_codec
from vqaudio.errors import ConfigError
from vqaudio.recipe import load_recipe, recipe_from_dict
from vqaudio.train import learning_rate, read_metrics, train
from vqaudio.train.data import (
    AudioCrops,
    eval_clips,
    find_audio,
    held_out_names,
    recipe_files,
    split_files,
)
from vqaudio_cli.main import app

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
runner = CliRunner()


def write_songs(folder: Path, count: int = 3, seconds: float = 1.5, rate: int = 22050) -> Path:
    """Stereo harmonic tones + a little noise at a rate the codec must resample from."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(count):
        tone = sum(0.2 / k * np.sin(2 * np.pi * (150 + 70 * i) * k * t) for k in range(1, 4))
        left = tone + 0.02 * rng.standard_normal(len(t))
        sf.write(folder / f"song{i}.wav", np.stack([left, 0.5 * left], 1).astype(np.float32), rate)
    return folder


def tiny_overrides(tmp_path: Path, songs: Path, **extra) -> list[str]:
    values = {
        "data.path": str(songs),
        "data.cache_dir": str(tmp_path / "cache"),
        "train.steps": 6,
        "train.checkpoint_every": 3,
        "train.eval_every": 6,
        "train.log_every": 1,
        **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    return write_songs(tmp_path_factory.mktemp("songs"))


def test_codec_then_prior_end_to_end(tmp_path, songs):
    codec_dir = tmp_path / "codec-run"
    r = runner.invoke(
        app,
        [
            "train",
            str(RECIPES / "tiny-codec.yaml"),
            "-o",
            str(codec_dir),
            "-q",
            *sum((["--set", s] for s in tiny_overrides(tmp_path, songs)), []),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "step 6: loss" in r.stderr and "usage [" in r.stderr
    rows = read_metrics(codec_dir)
    assert [row["step"] for row in rows if row["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    evals = [row for row in rows if row["kind"] == "eval"]
    assert len(evals) == 1 and all(np.isfinite(p["mel"]) for p in evals[0]["points"])
    assert [p["levels"] for p in evals[0]["points"]] == [1, 2]
    assert all(len(row["usage"]) == 2 for row in rows if row["kind"] == "train")
    for png in ("spectrogram.png", "usage.png", "loss.png"):
        assert (codec_dir / png).read_bytes()[:4] == b"\x89PNG"
    codec = load_codec(codec_dir / "model.safetensors")
    wav = torch.randn(1, 1, 1234) * 0.1
    assert codec.decode(codec.encode(wav)).shape == wav.shape
    assert load_recipe(codec_dir / "recipe.yaml").train.steps == 6  # the resolved recipe is kept

    prior_dir = tmp_path / "prior-run"
    sets = tiny_overrides(
        tmp_path, songs, **{"train.steps": 4, "codec": codec_dir / "model.safetensors"}
    )
    r = runner.invoke(
        app,
        [
            "train",
            str(RECIPES / "tiny-prior.yaml"),
            "-o",
            str(prior_dir),
            "-q",
            *sum((["--set", s] for s in sets), []),
        ],
    )
    assert r.exit_code == 0, r.output
    from vqaudio.prior import load_prior

    prior = load_prior(prior_dir / "model.safetensors")
    assert prior.codec_id == checkpoint_id(codec_dir / "model.safetensors")
    assert prior.config.codebook_size == codec.config.codebook_size  # copied, never typed
    assert prior.config.level_strides == codec.config.level_strides[:2]
    tokens = list((prior_dir / "codes").glob("*.npy"))
    assert len(tokens) == 3 and np.load(tokens[0], allow_pickle=False).dtype == np.int16
    evals = [row for row in read_metrics(prior_dir) if row["kind"] == "eval"]
    # A uniform guess costs log2(16) = 4 bits per token; this seeded 4-step run measures 3.88. A
    # loss in nats (x 0.69), per block instead of per token (x 3), or over the whole vocabulary
    # instead of the level's ids (+ 1 bit) lands outside.
    uniform = math.log2(prior.config.codebook_size)
    assert evals and uniform - 0.7 < evals[-1]["val_bits_per_token"] < uniform + 0.25
    # The prior recorded where its codec is: generate needs no --codec.
    r = runner.invoke(
        app,
        [
            "generate",
            "--prior",
            str(prior_dir / "model.safetensors"),
            "--seconds",
            "0.02",
            "-o",
            str(tmp_path / "g.wav"),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output


class Interrupt(Exception):
    pass


def test_resume_continues_exactly(tmp_path, songs):
    recipe = load_recipe(RECIPES / "tiny-codec.yaml", tiny_overrides(tmp_path, songs))
    train(recipe, tmp_path / "straight")

    def die_at_5(step, total, metrics):  # interrupted after the step-3 checkpoint was written
        if step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(recipe, tmp_path / "cut", on_progress=die_at_5)
    assert max(row["step"] for row in read_metrics(tmp_path / "cut")) == 4
    messages = []
    train(recipe, tmp_path / "cut", resume=True, on_message=messages.append)
    assert any(m.startswith("resuming") and m.endswith("at step 3") for m in messages)
    steps = [row["step"] for row in read_metrics(tmp_path / "cut") if row["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]  # continued, not restarted, no duplicated lines
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "cut" / "model.safetensors")
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-6, msg=name)

    longer = load_recipe(tmp_path / "cut" / "recipe.yaml", ["train.steps=7"])
    train(longer, tmp_path / "cut", resume=True)
    assert load_recipe(tmp_path / "cut" / "recipe.yaml").train.steps == 7  # the override sticks
    assert read_metrics(tmp_path / "cut")[-1]["step"] == 7


def test_existing_run_needs_resume_or_force(tmp_path, songs):
    recipe = load_recipe(
        RECIPES / "tiny-codec.yaml", tiny_overrides(tmp_path, songs, **{"train.steps": 1})
    )
    train(recipe, tmp_path / "run")
    with pytest.raises(Exception, match="--resume"):
        train(recipe, tmp_path / "run")
    train(recipe, tmp_path / "run", force=True)


@pytest.mark.parametrize(
    "yaml_text, sets, expected",
    [
        ("train:\n  batch_sise: 4\n", [], "unknown key 'batch_sise' (did you mean 'batch_size'?)"),
        ("train:\n  steps: many\n", [], "train.steps: expected an integer, got 'many'"),
        ("stage: codec\n", ["optim.lr=fast"], "optim.lr: expected a number"),
        ("stage: codec\n", ["trian.steps=3"], "unknown key 'trian' (did you mean 'train'?)"),
        ("stage: codec\n", ["data.path=MISSING"], "no such folder"),
        ("stage: codec\n", ["data.path=EMPTY"], "no audio files"),
        (  # a flat prior has no frames to draw: refused before anything is loaded
            "stage: prior\ncodec: x.safetensors\n",
            ["train.own_context=0.5"],
            "train.own_context needs a prior recipe with prior.kind frames",
        ),
        ("stage: codec\n", ["train.own_passes=0"], "train.own_passes and train.own_span"),
    ],
)
def test_bad_recipes_fail_with_one_line(tmp_path, yaml_text, sets, expected):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not audio")
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(yaml_text)
    sets = [
        s.replace("MISSING", str(tmp_path / "nope")).replace("EMPTY", str(tmp_path / "empty"))
        for s in sets
    ]
    args = ["train", str(recipe), "-o", str(tmp_path / "run"), "-q", "--device", "cpu"]
    r = runner.invoke(app, args + sum((["--set", s] for s in sets), []))
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], r.stderr
    assert "Traceback" not in r.output
    assert not (tmp_path / "run").exists()  # no partial run folder


def test_prior_without_its_codec_fails_before_writing_anything(tmp_path, songs):
    run_dir = tmp_path / "prior-run"
    args = ["train", str(RECIPES / "tiny-prior.yaml"), "-o", str(run_dir), "-q"]
    sets = ["data.path=" + str(songs), "codec=" + str(tmp_path / "missing.safetensors")]
    r = runner.invoke(app, args + sum((["--set", s] for s in sets), []))
    assert r.exit_code == 1 and "train the codec first" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_learning_rate_warms_up_then_decays_to_min():
    recipe = load_recipe(
        RECIPES / "tiny-codec.yaml", ["optim.warmup=10", "optim.lr=0.01", "optim.min_lr=0.0001"]
    )
    rates = [learning_rate(recipe.optim, s, 100) for s in range(1, 101)]
    assert rates[:10] == sorted(rates[:10]) and rates[9] == pytest.approx(0.01)
    assert rates[10:] == sorted(rates[10:], reverse=True)
    assert rates[-1] == pytest.approx(0.0001)


def test_data_cache_split_and_crops(tmp_path, songs):
    files = find_audio(songs)
    train_files, val_files = split_files(files, 1)
    assert len(val_files) == 1 and set(train_files) | set(val_files) == set(files)
    assert split_files(files, 1) == (train_files, val_files)  # deterministic hold-out
    recipe = load_recipe(RECIPES / "tiny-codec.yaml", tiny_overrides(tmp_path, songs))
    crops = AudioCrops.from_files(files, recipe.data, 16000, 4000)
    cached = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 3 and np.load(cached[0], allow_pickle=False).shape[0] == 1  # mono
    assert abs(np.load(cached[0]).shape[1] - 1.5 * 16000) <= 2  # resampled 22.05 -> 16 kHz once
    mtimes = [p.stat().st_mtime_ns for p in cached]
    AudioCrops.from_files(files, recipe.data, 16000, 4000)
    assert [p.stat().st_mtime_ns for p in cached] == mtimes  # not decoded again
    a = crops.batch(np.random.default_rng(5), 4)
    b = crops.batch(np.random.default_rng(5), 4)
    assert a.shape == (4, 1, 4000) and np.array_equal(a, b) and a.std() > 0.01
    assert not np.array_equal(a, crops.batch(np.random.default_rng(6), 4))
    assert json.loads(json.dumps(recipe.data.path)) == str(songs)


def test_extra_paths_add_training_files_and_keep_the_held_out_ones(tmp_path, songs):
    extra = tmp_path / "more"
    extra.mkdir()
    rate = 22050
    for name in ("a.wav", "b.flac"):
        sf.write(extra / name, np.zeros((rate // 2, 1), np.float32), rate)
    base = load_recipe(RECIPES / "tiny-codec.yaml", tiny_overrides(tmp_path, songs))
    train_files, val_files = recipe_files(base.data)
    more = load_recipe(
        RECIPES / "tiny-codec.yaml",
        [*tiny_overrides(tmp_path, songs), f"data.extra_paths=[{extra}, {songs}]"],
    )
    more_train, more_val = recipe_files(more.data)
    assert more_val == val_files  # the held-out split is still that of data.path
    assert more_train == train_files + [extra / "a.wav", extra / "b.flac"]  # songs/ not twice
    assert held_out_names(more_val) == f"held out: {val_files[0].name}"
    assert held_out_names(more_train, most=2).endswith(f"and {len(more_train) - 2} more")
    bad = load_recipe(
        RECIPES / "tiny-codec.yaml",
        [*tiny_overrides(tmp_path, songs), f"data.extra_paths=[{tmp_path / 'nowhere'}]"],
    )
    with pytest.raises(ConfigError, match=r"data.extra_paths .*no such folder.*extra_paths=\[\]"):
        recipe_files(bad.data)


def test_init_from_starts_at_the_given_weights_and_refuses_a_mismatch(tmp_path, songs):
    from vqaudio.codec import Codec
    from vqaudio.codec.io import save_codec
    from vqaudio.errors import CheckpointError

    sets = tiny_overrides(tmp_path, songs, **{"train.steps": 1, "optim.lr": 1e-12})
    recipe = load_recipe(RECIPES / "tiny-codec.yaml", sets + ["precision=bf16"])
    torch.manual_seed(123)  # weights unlike the recipe's seeded initialisation
    start = Codec(recipe.codec)
    save_codec(start, tmp_path / "start.safetensors")
    tuned = load_recipe(
        RECIPES / "tiny-codec.yaml",
        sets + ["precision=bf16", f"init_from={tmp_path / 'start.safetensors'}"],
    )
    rows = read_metrics(Path(train(tuned, tmp_path / "run")).parent)
    assert np.isfinite(rows[0]["loss"])  # bf16 autocast on CPU trains
    trained = load_file(tmp_path / "run" / "model.safetensors")
    for name, tensor in start.encoder.named_parameters():  # (BatchNorm statistics move in a step)
        torch.testing.assert_close(trained[f"encoder.{name}"], tensor, atol=1e-6, rtol=1e-6)

    other = load_recipe(RECIPES / "tiny-codec.yaml", sets + ["codec.latent_dim=8"])
    save_codec(Codec(other.codec), tmp_path / "other.safetensors")
    mismatched = load_recipe(
        RECIPES / "tiny-codec.yaml", sets + [f"init_from={tmp_path / 'other.safetensors'}"]
    )
    with pytest.raises(CheckpointError, match="do not fit"):
        train(mismatched, tmp_path / "run2")


# a tiny spectral codec (hop 128, n_fft 512 at 16 kHz) with the multi-band discriminator
SPECTRAL = {
    "codec.encoder": "fourier",
    "codec.decoder": "spectral",
    "codec.strides": "[4, 32]",
    "codec.n_fft": 512,
    "codec.spectral_dim": 16,
    "codec.encoder_layers": 1,
    "codec.spectral_layers": 1,
    "codec.griffin_lim_iters": 4,
    "codec.latent_norm": "none",
    "codec.codebook_dim": 0,
    "codec.l2_normalize": "false",
    "adversarial.enabled": "true",
    "adversarial.channels": 4,
    "adversarial.bands_hz": "[0, 1000, 3000]",
}


@pytest.mark.parametrize("decoder", ["conv", "spectral"])
def test_adversarial_training_logs_its_terms_and_resumes_exactly(tmp_path, songs, decoder):
    gan = {
        "adversarial.enabled": "true",
        "adversarial.window_lengths": "[64, 32]",
        "adversarial.channels": 4,
        "adversarial.start_step": 2,
        **(SPECTRAL if decoder == "spectral" else {}),
    }
    recipe = load_recipe(RECIPES / "tiny-codec.yaml", tiny_overrides(tmp_path, songs, **gan))
    train(recipe, tmp_path / "straight")
    rows = [r for r in read_metrics(tmp_path / "straight") if r["kind"] == "train"]
    assert "adv" not in rows[0] and "disc" not in rows[0]  # codec alone before start_step
    assert all(np.isfinite(r["adv"]) and np.isfinite(r["disc"]) for r in rows[2:])
    evals = [r for r in read_metrics(tmp_path / "straight") if r["kind"] == "eval"]
    assert all(np.isfinite(p["level_db"]) for p in evals[-1]["points"])  # per operating point
    assert (tmp_path / "straight" / "discriminator.safetensors").is_file()

    def die_at_5(step, total, metrics):
        if step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(recipe, tmp_path / "cut", on_progress=die_at_5)
    train(recipe, tmp_path / "cut", resume=True)
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "cut" / "model.safetensors")
    for name, tensor in straight.items():  # equal only if the discriminator resumed too
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_adversarial_is_refused_for_a_prior():
    with pytest.raises(ConfigError, match="only a codec recipe"):
        recipe_from_dict(
            {"stage": "prior", "codec": "c.safetensors", "adversarial": {"enabled": True}}, "x.yaml"
        )


def test_loss_weights_come_from_the_recipe(tmp_path, songs):
    sets = tiny_overrides(tmp_path, songs, **{"train.steps": 2, "train.eval_every": 0})
    recipe = load_recipe(RECIPES / "tiny-codec.yaml", sets + ["loss.stft=0", "loss.l1=0"])
    rows = [r for r in read_metrics(Path(train(recipe, tmp_path / "run")).parent) if "mel" in r]
    assert rows and all("stft" not in r for r in rows)
    # the logged loss is then mel_weight * mel + vq alone
    assert rows[0]["loss"] == pytest.approx(15.0 * rows[0]["mel"] + rows[0]["vq"], rel=1e-4)
    with pytest.raises(ConfigError, match="loss weights"):
        load_recipe(RECIPES / "tiny-codec.yaml", ["loss.mel=-1"])


def test_best_checkpoint_keeps_the_evaluation_with_the_most_notes(tmp_path, songs, monkeypatch):
    """best.safetensors is rewritten only when held-out chroma beats every earlier evaluation."""
    import vqaudio.train.loop as loop

    recipe = load_recipe(
        RECIPES / "tiny-codec.yaml",
        tiny_overrides(
            tmp_path,
            songs,
            **{"train.eval_every": 2, "train.steps": 6, "eval.clip_seconds": 1.0},
        ),
    )
    seen = []
    original = loop._keep_best

    def spy(task, model, run_dir, history, row):
        saved = original(task, model, run_dir, history, row)
        seen.append((row["val_chroma"], saved is not None))
        if saved:
            seen[-1] += (load_file(run_dir / "best.safetensors"),)
        return saved

    monkeypatch.setattr(loop, "_keep_best", spy)
    train(recipe, tmp_path / "run", device="cpu")
    assert len(seen) == 3 and seen[0][1]  # the first evaluation is the best so far
    best = seen[0][0]
    for chroma, saved, *_ in seen[1:]:
        assert saved == (chroma > best)
        best = max(best, chroma)
    final = load_file(tmp_path / "run" / "best.safetensors")
    last_saved = [s for s in seen if s[1]][-1][2]
    assert all(torch.equal(final[k], last_saved[k]) for k in final)


def _frozen_spectral_recipe(tmp_path: Path, songs: Path, **extra):
    """The tiny spectral codec with the discriminator and a frozen encoder and quantizer,
    started from a fresh codec saved as ``tmp_path / start.safetensors``."""
    from vqaudio.codec import Codec
    from vqaudio.codec.io import save_codec

    sets = tiny_overrides(tmp_path, songs, **SPECTRAL)
    torch.manual_seed(0)
    start = tmp_path / "start.safetensors"
    if not start.is_file():
        save_codec(Codec(load_recipe(RECIPES / "tiny-codec.yaml", sets).codec), start)
    more = {"init_from": start, "train.freeze": "[encoder, quantizer]", **extra}
    return load_recipe(RECIPES / "tiny-codec.yaml", sets + [f"{k}={v}" for k, v in more.items()])


def _spectral_task(tmp_path: Path, songs: Path):
    """A CodecTask of ``_frozen_spectral_recipe`` with no reconstruction terms: any gradient the
    decoder gets comes from the discriminator."""
    from vqaudio.train.codec_task import CodecTask

    silent = {"loss.mel": 0, "loss.log_magnitude": 0, "loss.convergence": 0}
    return CodecTask(_frozen_spectral_recipe(tmp_path, songs, **silent), lambda message: None)


def test_spectral_decoder_trains_against_the_discriminator_of_its_log_magnitudes(tmp_path, songs):
    """One step: the generator terms' gradient reaches the decoder and not the frozen encoder
    and quantizer; the discriminator's update then changes its weights."""
    import contextlib

    task = _spectral_task(tmp_path, songs)
    model = task.model.train()
    before = {k: v.clone() for k, v in task.discriminator.state_dict().items()}
    loss, metrics = task.loss(
        model, task.batch(np.random.default_rng(0), 2), contextlib.nullcontext
    )
    assert metrics["logmag"] > 0 and np.isfinite(metrics["adv"]) and metrics["feat"] > 0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())
    for part in (model.encoder, model.quantizer):
        assert all(p.grad is None for p in part.parameters())
    assert all(p.grad is None for p in task.discriminator.parameters())  # the codec's pass only
    out = task.after_step(1)
    assert np.isfinite(out["disc"]) and out["grad_decoder"] > 0 and "grad_encoder" not in out
    after = task.discriminator.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items())


def test_discriminator_state_round_trips_through_the_run_folder(tmp_path, songs):
    import contextlib

    task = _spectral_task(tmp_path, songs)
    for step in (1, 2):
        batch = task.batch(np.random.default_rng(step), 2)
        task.loss(task.model.train(), batch, contextlib.nullcontext)[0].backward()
        task.after_step(step)
    task.save_extra_state(tmp_path, 2)
    fresh = _spectral_task(tmp_path, songs)
    assert any(
        not torch.equal(v, fresh.discriminator.state_dict()[k])
        for k, v in task.discriminator.state_dict().items()
    )
    fresh.load_extra_state(tmp_path)
    assert fresh._step == 2
    for k, v in task.discriminator.state_dict().items():
        assert torch.equal(fresh.discriminator.state_dict()[k], v), k
    saved, loaded = task.d_optimizer.state_dict(), fresh.d_optimizer.state_dict()
    assert saved["state"].keys() == loaded["state"].keys()
    for index, state in saved["state"].items():
        for name, value in state.items():
            assert torch.equal(
                torch.as_tensor(loaded["state"][index][name]), torch.as_tensor(value)
            )


def test_eval_reports_the_output_level_per_operating_point(tmp_path, songs):
    task = _spectral_task(tmp_path, songs)
    wav = torch.from_numpy(task.crops.batch(np.random.default_rng(0), 2))
    assert task._scores(wav, wav)["level_db"] == pytest.approx(0.0, abs=1e-6)
    assert task._scores(wav, 0.5 * wav)["level_db"] == pytest.approx(-6.02, abs=0.01)
    result = task.evaluate(task.model, tmp_path, 1, "cpu")
    levels = [p["level_db"] for p in result["points"]]
    assert len(levels) == 2 and all(np.isfinite(levels))
    assert f"level {levels[0]:+.2f} dB" in task.describe_eval(result)


def test_adversarial_decoder_training_keeps_the_codes_of_init_from(tmp_path, songs):
    """The run the sharp-decoder recipe makes, in miniature: level term and discriminator on,
    encoder and quantizer frozen. The codes are bit-identical to the starting codec's."""
    from vqaudio.codec.io import load_codec

    from .conftest import harmonic

    recipe = _frozen_spectral_recipe(
        tmp_path, songs, **{"loss.level": 10, "train.steps": 3, "train.eval_every": 0}
    )
    first = load_codec(tmp_path / "start.safetensors")
    second = load_codec(train(recipe, tmp_path / "run"))
    rows = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "train"]
    assert all(r["level"] >= 0 and np.isfinite(r["adv"]) for r in rows)
    wav = harmonic(8000, first.sample_rate) + 0.01 * torch.randn(1, 1, 8000)
    a, b = first.encode(wav), second.encode(wav)
    assert all(torch.equal(x, y) for x, y in zip(a.levels, b.levels))
    assert second.code_space_id == first.code_space_id
    assert not torch.equal(first.decode(a), second.decode(b))  # the decoder did train


def test_evaluation_clips_leave_out_files_of_digital_silence():
    """A held-out file of digital silence (Wesnoth's `silence`, -103 dBFS) scores the decoder on
    noise: its clips go to the audible files instead, unless every file is silent."""
    rng = np.random.default_rng(0)
    music = [0.1 * rng.standard_normal((1, 8000)).astype(np.float32) for _ in range(2)]
    silent = np.full((1, 8000), 1e-5, np.float32)  # -100 dBFS
    clips = eval_clips([music[0], silent, music[1]], 6, 1000)
    assert clips.shape == (6, 1, 1000)
    assert (np.sqrt((clips**2).mean(axis=(1, 2))) > 0.05).all()  # every clip is of the music
    only = eval_clips([silent], 2, 1000)  # nothing audible: the silent file, not an error
    assert only.shape == (2, 1, 1000) and np.abs(only).max() < 1e-4


def test_evaluation_decodes_with_band_levels_when_the_loss_uses_them(tmp_path, songs, monkeypatch):
    """With ``loss.band_levels`` the held-out evaluation decodes as a file does, scaled to each
    clip's own band levels: an untrained decoder then renders the input's level, which it does
    not on its own."""
    from vqaudio.codec import band_levels
    from vqaudio.train.codec_task import CodecTask

    monkeypatch.setattr(band_levels, "MAX_GAIN_DB", 60.0)  # the untrained one is far off
    level = {}
    for name in ("", "4x0.4"):
        recipe = _frozen_spectral_recipe(tmp_path, songs, **{"loss.band_levels": name or "''"})
        task = CodecTask(recipe, lambda message: None)
        result = task.evaluate(task.model, tmp_path, 0, "cpu")
        level[name] = max(abs(p["level_db"]) for p in result["points"])
    assert level["4x0.4"] < 1.0 < level[""], level
