"""Encode/decode speed and peak memory of vqaudio's codec beside EnCodec, SNAC, DAC and Opus.

Every (model, input length, threads) runs in its own subprocess, so one run's memory and caches
never touch another's numbers. Speed is "x real time" = seconds of audio / seconds of wall time
(higher is faster); memory is the peak RSS growth during encode or decode over the RSS just
before it (the Linux peak counter is reset in between), i.e. what the work itself needs.

The other codecs run from their PyPI packages in benchmarks/.venv-others (make it with
benchmarks/setup_others.sh) with RANDOM weights in their published configurations: compute and
memory are those of the trained models, and no weights are downloaded. Input is real music (a
Wesnoth track, mono, at each model's rate, looped to the length).

    python benchmarks/codec_speed.py --random              # vqaudio's default CodecConfig()
    python benchmarks/codec_speed.py --codec model.safetensors --lengths 10 60 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

OTHERS_PYTHON = HERE / ".venv-others" / "bin" / "python"
INPUT_TRACK = "traveling_minstrels.ogg"  # a held-out track (see common.held_out_tracks)
# name -> (sample rate, bitrate label, needs the others venv)
MODELS = {
    "vqaudio": (None, "6 kbps", False),
    "vqaudio .vqa": (None, "6 kbps", False),
    "encodec-24khz": (24000, "6 kbps", True),
    "snac-24khz": (24000, "0.98 kbps", True),
    "dac-44khz": (44100, "7.7 kbps", True),
    "opus": (24000, "12 kbps", False),
}


# ---------------------------------------------------------------- worker (one config per process)


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _measure(work) -> tuple[float, float, object]:
    """(seconds, peak RSS growth in MB, result) of ``work()``."""
    try:  # reset the kernel's peak-RSS counter (VmHWM) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    before = _rss_kb("VmRSS")
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    return seconds, max(_rss_kb("VmHWM") - before, 0) / 1024, result


def _stub_torchaudio() -> None:
    """encodec and audiotools import torchaudio at module level for file I/O and resampling that
    this benchmark never calls; with no torchaudio built for this torch, an empty module stands
    in."""
    import types

    try:
        import torchaudio  # noqa: F401

        return
    except Exception:
        pass

    class Stub(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            module = Stub(f"{self.__name__}.{name}")
            setattr(self, name, module)
            return module

    for name in ("torchaudio", "torchaudio.functional", "torchaudio.transforms"):
        sys.modules[name] = Stub(name)


def _build(name: str, codec_path: str | None):
    """(model, sample rate, encode(x) -> codes, decode(codes) -> wav, parameters)."""
    import torch

    torch.manual_seed(0)
    if name.startswith("vqaudio"):
        from vqaudio import Codec, CodecConfig, load_codec

        model = load_codec(codec_path) if codec_path else Codec(CodecConfig()).eval()
        bps = 6000 if 6000 >= model.config.bitrates[0] else None
        return (
            model,
            model.config.sample_rate,
            lambda x: model.encode(x, bitrate=bps),
            model.decode,
        )
    _stub_torchaudio()
    if name == "encodec-24khz":
        from encodec import EncodecModel

        model = EncodecModel.encodec_model_24khz(pretrained=False)
        model.set_target_bandwidth(6.0)
        return model.eval(), 24000, model.encode, model.decode
    if name == "snac-24khz":  # hubertsiuzdak/snac_24khz config.json
        from snac import SNAC

        model = SNAC(
            sampling_rate=24000,
            encoder_dim=48,
            encoder_rates=[2, 4, 8, 8],
            decoder_dim=1024,
            decoder_rates=[8, 8, 4, 2],
            attn_window_size=None,
            codebook_size=4096,
            codebook_dim=8,
            vq_strides=[4, 2, 1],
            noise=True,
            depthwise=True,
        ).eval()
        return model, 24000, model.encode, model.decode
    if name == "dac-44khz":  # descript/dac_44khz 8 kbps: DAC() defaults, 9 codebooks
        import dac

        model = dac.DAC(sample_rate=44100).eval()

        def encode(x):
            return model.encode(model.preprocess(x, 44100), n_quantizers=9)[1]

        return (
            model,
            44100,
            encode,
            lambda codes: model.decode(model.quantizer.from_codes(codes)[0]),
        )
    raise SystemExit(f"unknown model {name}")


def _result(encode: tuple, decode: tuple, parameters: int | None, **extra) -> dict:
    """A worker's answer; ``encode`` and ``decode`` are (seconds, peak MB)."""
    return {
        "encode_s": encode[0],
        "decode_s": decode[0],
        "encode_peak_mb": encode[1],
        "decode_peak_mb": decode[1],
        "parameters": parameters,
        **extra,
    }


def _input(sample_rate: int, seconds: float):
    from vqaudio import audio

    wav, _ = audio.read(common.find_tracks([INPUT_TRACK])[0], sample_rate=sample_rate, channels=1)
    return common.looped(wav, int(seconds * sample_rate))


def worker(name: str, seconds: float, threads: int, codec_path: str | None) -> dict:
    import torch

    torch.set_num_threads(threads)
    if name == "opus":
        return _opus_worker(seconds)
    model, rate, encode, decode = _build(name, codec_path)
    wav = torch.from_numpy(_input(rate, seconds))[None]  # (1, 1, T)
    params = sum(p.numel() for p in model.parameters())
    with torch.inference_mode():
        decode(encode(wav[..., :rate]))  # warm-up: allocator, kernels
        if name == "vqaudio .vqa":
            return _vqa_worker(model, wav, rate, seconds, params)
        enc_s, enc_mb, codes = _measure(lambda: encode(wav))
        dec_s, dec_mb, _ = _measure(lambda: decode(codes))
    return _result((enc_s, enc_mb), (dec_s, dec_mb), params)


def _vqa_worker(model, wav, rate: int, seconds: float, params: int) -> dict:
    """The user's path: audio file -> .vqa -> audio file, chunked (vqaudio.compress)."""
    from vqaudio import audio
    from vqaudio.vqa.compress import compress, decompress

    with tempfile.TemporaryDirectory() as tmp:
        source, vqa, out = Path(tmp, "in.wav"), Path(tmp, "in.vqa"), Path(tmp, "out.wav")
        audio.write(source, wav[0].numpy(), rate)
        enc_s, enc_mb, _ = _measure(lambda: compress(model, source, vqa, bitrate=6000))
        dec_s, dec_mb, _ = _measure(lambda: decompress(vqa, out, codec=model))
        real_kbps = vqa.stat().st_size * 8 / seconds / 1000
        return _result((enc_s, enc_mb), (dec_s, dec_mb), params, real_kbps=real_kbps)


def _opus_worker(seconds: float) -> dict:
    """opusenc/opusdec binaries (single-threaded); memory: their peak RSS from /usr/bin/time."""
    from vqaudio import audio

    wav = _input(24000, seconds)
    with tempfile.TemporaryDirectory() as tmp:
        source, opus, out = Path(tmp, "in.wav"), Path(tmp, "in.opus"), Path(tmp, "out.wav")
        audio.write(source, wav, 24000)
        enc = ["opusenc", "--quiet", "--bitrate", "12", "--hard-cbr", str(source), str(opus)]
        dec = ["opusdec", "--quiet", "--rate", "24000", str(opus), str(out)]
        encoded = _run_binary(enc, Path(tmp, "enc.mem"))
        decoded = _run_binary(dec, Path(tmp, "dec.mem"))
    return _result(encoded, decoded, None, memory_note="whole process peak RSS")


def _run_binary(cmd: list[str], memory_file: Path) -> tuple[float, float | None]:
    """(wall seconds, peak RSS MB or None). Timed without /usr/bin/time, measured with it."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - start
    if not Path("/usr/bin/time").exists():
        return seconds, None
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(memory_file), *cmd], check=True)
    return seconds, int(memory_file.read_text().split()[-1]) / 1024


# ---------------------------------------------------------------- driver


def run_config(name: str, seconds: float, threads: int, codec: str | None, timeout: float) -> dict:
    row = {"model": name, "bitrate": MODELS[name][1], "seconds": seconds, "threads": threads}
    python = str(OTHERS_PYTHON) if MODELS[name][2] else sys.executable
    if MODELS[name][2] and not OTHERS_PYTHON.exists():
        return {**row, "unavailable": "run benchmarks/setup_others.sh first"}
    cmd = [python, __file__, "--worker", name, "--lengths", str(seconds), "--threads", str(threads)]
    if codec:
        cmd += ["--codec", codec]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONWARNINGS": "ignore",
    }
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**row, "unavailable": f"timed out after {timeout:g} s"}
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return {**row, "unavailable": reason[:200]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["encode_x_realtime"] = seconds / result["encode_s"]
    result["decode_x_realtime"] = seconds / result["decode_s"]
    return {**row, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_codec_arguments(
        parser, "vqaudio: random weights in the default CodecConfig() (speed only)"
    )
    parser.add_argument(
        "--lengths", type=float, nargs="+", default=[10.0, 60.0], help="input lengths in seconds"
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--timeout", type=float, default=900, help="seconds per configuration")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.lengths[0], args.threads[0], args.codec)))
        return
    codec = args.codec
    if codec is None and not args.random:
        from vqaudio.checkpoint import DEFAULT_CODEC

        codec = str(DEFAULT_CODEC)
    label = "random-init CodecConfig()" if args.random else f"checkpoint {codec}"
    info = common.machine()
    rows = []
    for name in args.models:
        for seconds in args.lengths:
            for threads in args.threads if name != "opus" else [1]:
                print(f"... {name}, {seconds:g} s, {threads} thread(s)", file=sys.stderr)
                rows.append(
                    run_config(
                        name, seconds, threads, codec if not args.random else None, args.timeout
                    )
                )
    common.report(
        "codec_speed",
        f"codec speed (vqaudio: {label})",
        info,
        rows,
        [
            ("model", "model", ""),
            ("bitrate", "bitrate", ""),
            ("seconds", "input s", "{:g}"),
            ("threads", "threads", ""),
            ("encode_x_realtime", "encode ×RT", "{:.1f}"),
            ("decode_x_realtime", "decode ×RT", "{:.1f}"),
            ("encode_peak_mb", "enc peak MB", "{:.0f}"),
            ("decode_peak_mb", "dec peak MB", "{:.0f}"),
            ("parameters", "params", "{:,}"),
            ("unavailable", "note", ""),
        ],
        model=label,
    )


if __name__ == "__main__":
    main()
