"""Put a trained codec (and the prior that goes with it) into the package as the defaults.

    python scripts/ship_models.py runs/music-24k-codec/model.safetensors      # codec only
    python scripts/ship_models.py vqaudio/models/codec.safetensors \
        --prior runs/music-24k-prior/model.safetensors                      # + its prior
    python scripts/ship_models.py runs/music-24k-decoder/model.safetensors \
        --prior vqaudio/models/prior.safetensors       # a new decoder: re-point the prior
    python scripts/ship_models.py vqaudio/models/codec.safetensors \
        --prior runs/music-24k-prior/best.safetensors --prior-only   # a new prior only

The codec is stored with its decoder in float16 and without its EMA codebook statistics (encoder
and quantizer stay float32, so codes are exactly those of the trained file); the prior in float16.
A prior records the id and the code space (encoder + quantizer,
vqaudio/codec/code_space.py) of the codec whose codes it models; when the new codec only has a
new decoder (trained with ``train.freeze: [encoder, quantizer]``), it has the prior's code space,
the prior is re-saved pointing at the new codec (and checked to give identical codes where the
prior's codec file is at hand). Anything else is refused: a prior must then be trained on the new
codec's codes. The new codec file records the ids of the earlier codec files of its code space
(the one shipped before it among them), so .vqa files made before files recorded the code space
keep decoding.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from vqaudio.checkpoint import DEFAULT_CODEC, checkpoint_id
from vqaudio.codec.code_space import accepts
from vqaudio.codec.io import EMA_STATISTICS, load_codec, save_codec
from vqaudio.prior import load_prior, save_prior

FROZEN = ("encoder.", "quantizer.")


def same_codes(a, b) -> bool:
    """Bit-identical frozen weights, and identical codes for 20 s of noisy harmonic audio."""
    sa, sb = a.state_dict(), b.state_dict()
    keys = [k for k in sa if k.startswith(FROZEN) and not k.endswith(EMA_STATISTICS)]
    if set(keys) != {k for k in sb if k.startswith(FROZEN) and not k.endswith(EMA_STATISTICS)}:
        return False
    if not all(torch.equal(sa[k], sb[k]) for k in keys):
        return False
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(20 * a.sample_rate) / a.sample_rate
    wav = 0.3 * torch.sin(2 * torch.pi * 220 * t * (1 + 0.5 * t / 20)) + 0.05 * torch.randn(
        t.shape, generator=gen
    )
    ca, cb = a.encode(wav.view(1, 1, -1)), b.encode(wav.view(1, 1, -1))
    return all(torch.equal(x, y) for x, y in zip(ca.levels, cb.levels))


def ship_prior_only(prior, out: Path) -> int:
    """The prior in float16 beside the codec already shipped in ``out``, which must be the
    codec its codes came from or one of that code space; the codec file is not touched."""
    if prior is None:
        print("error: --prior-only needs --prior", file=sys.stderr)
        return 1
    if not (out / "codec.safetensors").is_file():
        print(f"error: --prior-only: {out} holds no codec.safetensors", file=sys.stderr)
        return 1
    shipped = load_codec(out / "codec.safetensors")
    if not accepts(shipped, prior.codec_id, prior.code_space_id):
        print(
            f"error: the prior models codec {prior.codec_id}, not the code space of "
            f"{out / 'codec.safetensors'} ({shipped.code_space_id})",
            file=sys.stderr,
        )
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        new_prior = Path(tmp) / "prior.safetensors"
        prior_id = save_prior(
            prior,
            new_prior,
            shipped.checkpoint_id,
            half=True,
            code_space_id=shipped.code_space_id,
        )
        shutil.move(new_prior, out / "prior.safetensors")
        (out / "prior.safetensors").chmod(0o644)
    print(f"shipped prior {prior_id} (codec {shipped.checkpoint_id} unchanged) to {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("codec", type=Path, help="trained codec model file")
    parser.add_argument("--prior", type=Path, help="prior to ship with it (default: codec only)")
    parser.add_argument("--out", type=Path, default=DEFAULT_CODEC.parent, help="models folder")
    parser.add_argument(
        "--prior-only",
        action="store_true",
        help="ship only --prior, for the codec file already in --out (left as it is)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    prior = load_prior(args.prior) if args.prior else None
    if args.prior_only:  # the codec argument is not read: the one in --out stays
        return ship_prior_only(prior, args.out)
    codec = load_codec(args.codec)
    current = args.out / "codec.safetensors"
    if current.is_file():
        shipped_before = load_codec(current)
        space = codec.code_space_id
        if shipped_before.code_space_id == space:  # a new decoder: keep the old files decodable
            known = codec.code_space_codecs + shipped_before.code_space_codecs
            codec.lineage = {space: tuple(dict.fromkeys(known))}
    with tempfile.TemporaryDirectory() as tmp:
        new_codec = Path(tmp) / "codec.safetensors"
        codec_id = save_codec(codec, new_codec, half=True)
        shipped = load_codec(new_codec)
        if not same_codes(codec, shipped):
            print("error: the float16 decoder changed the codes (it must not)", file=sys.stderr)
            return 1
        if prior is None:
            args.out.mkdir(parents=True, exist_ok=True)
            shutil.move(new_codec, args.out / "codec.safetensors")
            (args.out / "codec.safetensors").chmod(0o644)
            print(f"shipped codec {codec_id} to {args.out}; train a prior on it next")
            return 0
        old = next(
            (
                p
                for p in (args.codec, args.out / "codec.safetensors")
                if p.is_file() and checkpoint_id(p) == prior.codec_id
            ),
            None,
        )
        if prior.codec_id != codec_id:
            if not accepts(shipped, prior.codec_id, prior.code_space_id) or (
                old is not None and not same_codes(load_codec(old), shipped)
            ):
                print(
                    f"error: {args.prior} models codec {prior.codec_id}, whose code space is not "
                    f"{args.codec}'s ({shipped.code_space_id}); train a prior on the new codec",
                    file=sys.stderr,
                )
                return 1
            print(f"codec {codec_id} has the code space of {prior.codec_id}: re-pointing the prior")
        new_prior = Path(tmp) / "prior.safetensors"
        space = shipped.code_space_id
        prior_id = save_prior(prior, new_prior, codec_id, half=True, code_space_id=space)
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.move(new_codec, args.out / "codec.safetensors")
        shutil.move(new_prior, args.out / "prior.safetensors")
        for name in ("codec.safetensors", "prior.safetensors"):
            (args.out / name).chmod(0o644)
    size = sum((args.out / f).stat().st_size for f in ("codec.safetensors", "prior.safetensors"))
    print(f"shipped codec {codec_id} and prior {prior_id} ({size / 1e6:.1f} MB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
