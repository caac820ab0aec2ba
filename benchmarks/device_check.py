"""Run the product's paths on one device and compare them with the CPU's.

On ``--device DEV`` (cpu, cuda, cuda:1, ...) and on the CPU as the reference: compress and
decompress a music clip with the shipped codec, generate with the shipped prior and a seed, and
one training step of each recipe kind (a codec; priors of kind frames, transformer and wavenet,
tiny, over the codec just trained) on synthetic songs. Then compares codes (the share equal to
the CPU's, and whether the .vqa files are byte-identical), audio (largest difference from the
CPU's) and the first training loss, and prints a table of timings with the command behind each.
Each device step runs twice: "first" includes warm-up (CUDA context, kernel choice), "again"
does not.

    python benchmarks/device_check.py --device cuda
    python benchmarks/device_check.py --device cpu      # the CPU against itself (~1-2 min)

Writes benchmarks/results/device_check_DEV.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

RECIPES = HERE.parent / "recipes"

# ---------------------------------------------------------------------------------------------
# Adapter: every vqaudio call this script makes. When the public API moves, fix it here only.
# ---------------------------------------------------------------------------------------------


def load_models(device: str):
    """(codec, prior): the shipped models on ``device``."""
    from vqaudio.codec.io import load_codec
    from vqaudio.prior import load_prior

    return load_codec(None).to(device).eval(), load_prior(None, device=device)


def encode(codec, wav: torch.Tensor) -> list[torch.Tensor]:
    """Codes per level of wav (1, C, T) at the codec's rate, on the codec's device."""
    device = next(codec.parameters()).device
    return [c.cpu() for c in codec.encode(wav.to(device)).levels]


def compress_file(codec, source: Path, out: Path) -> None:
    from vqaudio.vqa.compress import compress

    compress(codec, source, out)


def decompress_file(codec, source: Path, out: Path) -> None:
    from vqaudio.vqa.compress import decompress

    decompress(source, out, codec)


def generate_audio(prior, codec, seconds: float, seed: int) -> np.ndarray:
    from vqaudio.generation import generate

    return generate(prior, codec, seconds, seed=seed).cpu().numpy()


def train_steps(recipe: Path, overrides: dict, run_dir: Path, device: str) -> float:
    """Train ``recipe`` with ``overrides`` into ``run_dir``; returns the first logged loss."""
    from vqaudio.recipe import load_recipe
    from vqaudio.train import read_metrics, train

    train(load_recipe(recipe, [f"{k}={v}" for k, v in overrides.items()]), run_dir, device)
    return next(r["loss"] for r in read_metrics(run_dir) if r.get("kind") == "train")


# ---------------------------------------------------------------------------------------------

PRIOR_KINDS = {  # tiny priors over the tiny codec; one step each
    "frames": {"prior.kind": "frames", "prior.depth_layers": 1, "prior.depth_dim": 32},
    "transformer": {"prior.kind": "transformer"},
    "wavenet": {"prior.kind": "wavenet", "prior.residual_channels": 16},
}


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def music_clip(seconds: float, sample_rate: int, folder: Path) -> Path:
    """A held-out music clip (Debian game music) if present, else a synthetic chord + beat."""
    path = folder / "clip.wav"
    tracks = [t for t in common.held_out_tracks() if t.exists()] if _has_music() else []
    clips = common.music_clips(tracks[:1], seconds, 1, sample_rate) if tracks else []
    if clips:
        wav = clips[0][1]
    else:
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 6
        beat = np.exp(-30 * (t % 0.5)) * np.sin(2 * np.pi * 60 * t)
        wav = (chord + 0.5 * beat)[None].astype(np.float32)
    sf.write(path, wav.T, sample_rate)
    return path


def _has_music() -> bool:
    import glob

    return bool(glob.glob(common.MUSIC, recursive=True))


def write_songs(folder: Path, count: int = 4, seconds: float = 1.5, rate: int = 22050) -> Path:
    """Harmonic tones + a little noise: data for the tiny recipes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(count):
        tone = sum(0.2 / k * np.sin(2 * np.pi * (150 + 70 * i) * k * t) for k in range(1, 4))
        wav = tone + 0.02 * rng.standard_normal(len(t))
        sf.write(folder / f"song{i}.wav", wav.astype(np.float32), rate)
    return folder


def product_paths(device: str, tmp: Path, clip: Path, seconds: float, runs: int, tag: str) -> dict:
    """Codes, files, audio and timings of compress, decompress and generate on ``device``."""
    from vqaudio import audio

    codec, prior = load_models(device)
    wav, _ = audio.read(clip, sample_rate=codec.sample_rate, channels=1)
    out: dict = {"times": {}}
    for run in range(runs):
        vqa, decoded = tmp / f"{tag}-{run}.vqa", tmp / f"{tag}-{run}.wav"
        out["codes"], t_encode = timed(encode, codec, torch.from_numpy(wav)[None])
        _, t_compress = timed(compress_file, codec, clip, vqa)
        _, t_decompress = timed(decompress_file, codec, vqa, decoded)
        out["generated"], t_generate = timed(generate_audio, prior, codec, seconds, 0)
        for name, t in (
            ("encode", t_encode),
            ("compress", t_compress),
            ("decompress", t_decompress),
            ("generate", t_generate),
        ):
            out["times"].setdefault(name, []).append(t)
    out["vqa"] = vqa.read_bytes()
    out["decoded"] = sf.read(decoded, dtype="float32")[0]
    return out


def training_steps(device: str, tmp: Path, songs: Path, tag: str) -> dict:
    """First loss and time of one step of each recipe kind on ``device``."""
    base = {
        "data.path": songs,
        "data.cache_dir": tmp / f"cache-{tag}",
        "data.val_files": 0,
        "train.steps": 1,
        "train.log_every": 1,
        "train.eval_every": 0,
        "train.checkpoint_every": 1,
    }
    codec_dir = tmp / f"codec-{tag}"
    out = {}
    out["codec"] = timed(train_steps, RECIPES / "tiny-codec.yaml", base, codec_dir, device)
    for kind, extra in PRIOR_KINDS.items():
        overrides = {**base, "codec": codec_dir / "model.safetensors", **extra}
        run = tmp / f"prior-{kind}-{tag}"
        out[f"prior {kind}"] = timed(
            train_steps, RECIPES / "tiny-prior.yaml", overrides, run, device
        )
    return out


def commands(device: str, seconds: float) -> dict:
    """The CLI command behind each timed step."""
    tiny = "--set train.steps=1 --set data.path=SONGS"
    return {
        "encode": f"python -c 'codec.encode(wav)'  # on {device}, inside vqaudio compress",
        "compress": f"vqaudio compress clip.wav -o clip.vqa --device {device}",
        "decompress": f"vqaudio decompress clip.vqa -o clip.wav --device {device}",
        "generate": f"vqaudio generate --seconds {seconds:g} --seed 0 --device {device}",
        "codec": f"vqaudio train recipes/tiny-codec.yaml {tiny} --device {device}",
        **{
            f"prior {kind}": f"vqaudio train recipes/tiny-prior.yaml {tiny} "
            + " ".join(f"--set {k}={v}" for k, v in extra.items())
            + f" --set codec=CODEC --device {device}"
            for kind, extra in PRIOR_KINDS.items()
        },
    }


def compare(device: str, cpu: dict, dev: dict, cpu_train: dict, dev_train: dict) -> list[dict]:
    equal = [float((a == b).float().mean()) for a, b in zip(cpu["codes"], dev["codes"])]
    codes = sum(e * a.numel() for e, a in zip(equal, cpu["codes"])) / sum(
        a.numel() for a in cpu["codes"]
    )
    n = min(len(cpu["decoded"]), len(dev["decoded"]))
    rows = [
        {"check": "codes equal to the CPU's (share)", "value": codes},
        {"check": "level 0 codes equal (share)", "value": equal[0]},
        {"check": ".vqa file byte-identical", "value": float(cpu["vqa"] == dev["vqa"])},
        {
            "check": "decoded audio: max |difference|",
            "value": float(np.abs(cpu["decoded"][:n] - dev["decoded"][:n]).max()),
        },
        {
            "check": "generated audio (seed 0): max |difference|",
            "value": float(np.abs(cpu["generated"] - dev["generated"]).max())
            if cpu["generated"].shape == dev["generated"].shape
            else float("inf"),
        },
    ]
    for name, (loss, _) in cpu_train.items():
        other = dev_train[name][0]
        rows.append(
            {"check": f"train {name}: first loss, relative difference", "value": abs(other - loss)}
        )
        rows[-1]["value"] /= max(abs(loss), 1e-12)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", required=True, help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip to compress")
    parser.add_argument("--generate-seconds", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=2, help="runs of each step on the device")
    parser.add_argument("--out", type=Path, help="JSON path [default: benchmarks/results/...]")
    args = parser.parse_args()
    threads = torch.get_num_threads()  # training sets its recipe's count: products first
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        clip = music_clip(args.seconds, 24000, tmp)
        songs = write_songs(tmp / "songs")
        cpu = product_paths("cpu", tmp, clip, args.generate_seconds, 1, "reference")
        torch.set_num_threads(threads)  # decoded audio depends on it (float sums' order)
        dev = product_paths(args.device, tmp, clip, args.generate_seconds, args.runs, "device")
        cpu_train = training_steps("cpu", tmp, songs, "reference")
        dev_train = training_steps(args.device, tmp, songs, "device")
    cmd = commands(args.device, args.generate_seconds)
    times = [
        {
            "step": name,
            "cpu_s": cpu["times"][name][0],
            "first_s": t[0],
            "again_s": t[-1] if len(t) > 1 else None,
            "command": cmd[name],
        }
        for name, t in dev["times"].items()
    ]
    times += [
        {"step": f"train {name}", "cpu_s": cpu_train[name][1], "first_s": t, "command": cmd[name]}
        for name, (_, t) in dev_train.items()
    ]
    checks = compare(args.device, cpu, dev, cpu_train, dev_train)
    info = common.machine()
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    common.print_header(f"device check: {args.device} against the CPU", info)
    common.print_table(checks, [("check", "check", ""), ("value", "value", "{:.6g}")])
    print()
    common.print_table(
        times,
        [
            ("step", "step", ""),
            ("cpu_s", "CPU s", "{:.2f}"),
            ("first_s", f"{args.device} s (first)", "{:.2f}"),
            ("again_s", f"{args.device} s (again)", "{:.2f}"),
            ("command", "command", ""),
        ],
    )
    document = {"machine": info, "command": common.command(), "checks": checks, "times": times}
    name = f"device_check_{args.device.replace(':', '')}"
    path = args.out or common.RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results: {path}")
    print(f"reproduce: {common.command()}")


if __name__ == "__main__":
    main()
