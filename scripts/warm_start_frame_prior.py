"""Warm start a frame prior from a checkpoint of an earlier vqaudio frame prior, keeping what it
computes and adding what the current model has:

- small token embeddings (before the unit-scale init of vqaudio/prior/frames.py): the token rows
  are scaled to unit RMS and the frame input projection down by the same factor, so the temporal
  transformer computes exactly what it did, while the depth's token term grows to the scale of
  the rest of its input;
- no previous-frame path (``depth_previous``) or copy gate (``copy_gate``): added at zero, so
  the model starts as it was;
- ``--code-counts N``: adds the unigram cache (``prior.code_counts``) with its gates at their
  initial values (frames.COUNT_GATE_INIT), which already lower the held-out bits;
- ``--levels N``: models the codec's first N levels (vqaudio/prior/grow.py): the old levels keep
  what they learnt, the new ones start with no say in the temporal transformer.

    python scripts/warm_start_frame_prior.py runs/old/model.safetensors runs/warm.safetensors
    python scripts/warm_start_frame_prior.py vqaudio/models/prior.safetensors \
        runs/warm.safetensors --code-counts 32
    python scripts/warm_start_frame_prior.py runs/pe-step300.safetensors runs/warm8.safetensors \
        --levels 8
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from vqaudio.checkpoint import read_model_file
from vqaudio.codec.io import read_codec_file
from vqaudio.config import CodecConfig, PriorConfig
from vqaudio.prior import build_prior, save_prior
from vqaudio.prior.grow import with_more_levels
from vqaudio.strict import build


def main(source: str, target: str, code_counts: int | None, levels: int | None, codec: str) -> None:
    state, raw, metadata = read_model_file(source, "prior")
    config = build(PriorConfig, raw, "prior")
    if code_counts is not None:
        config = dataclasses.replace(config, code_counts=code_counts)
    prior = build_prior(config)
    missing, unexpected = prior.load_state_dict(state, strict=False)
    zeroed = {"depth_previous.weight", "copy_gate.weight", "copy_gate.bias"}
    initialised = {"count_gate.weight", "count_gate.bias"}
    if unexpected or set(missing) - zeroed - initialised:
        raise SystemExit(f"{source}: not a frame prior this script knows ({missing}, {unexpected})")
    with torch.no_grad():
        for name in set(missing) & zeroed:  # each starts at zero: the model computes what it did
            prior.get_parameter(name).zero_()
        tokens = prior.token_embedding.weight[: prior.start_id]  # the start row keeps its scale
        scale = 1.0 / float(tokens.pow(2).mean().sqrt())
        if scale > 2.0:
            tokens.mul_(scale)
            prior.frame_in.weight.div_(scale)
    if levels is not None and levels != config.num_levels:
        _, codec_raw, _ = read_codec_file(codec)
        strides = tuple(build(CodecConfig, codec_raw, "codec").level_strides)
        if not config.num_levels <= levels <= len(strides):
            raise SystemExit(f"--levels {levels}: must be {config.num_levels}..{len(strides)}")
        prior = with_more_levels(prior, strides[:levels])
        missing.append(f"levels {config.num_levels + 1}-{levels}")
    save_prior(
        prior,
        target,
        metadata["vqaudio.codec_id"],
        codec_path=metadata.get("vqaudio.codec_path"),
        code_space_id=metadata.get("vqaudio.code_space_id"),
    )
    print(f"{source} -> {target}: token embeddings x {scale:.1f}; added: {missing}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--code-counts", type=int, help="add the unigram cache over N frames")
    parser.add_argument("--levels", type=int, help="model the codec's first N levels")
    parser.add_argument(
        "--codec", default="vqaudio/models/codec.safetensors", help="for --levels: its strides"
    )
    args = parser.parse_args()
    main(args.source, args.target, args.code_counts, args.levels, args.codec)
