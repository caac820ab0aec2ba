"""Warm start a frame prior from a checkpoint of an earlier vqaudio frame prior, keeping what it
computes and adding what the current model has:

- small token embeddings (before the unit-scale init of vqaudio/prior/frames.py): the token rows
  are scaled to unit RMS and the frame input projection down by the same factor, so the temporal
  transformer computes exactly what it did, while the depth's token term grows to the scale of
  the rest of its input;
- no previous-frame path (``depth_previous``) or copy gate (``copy_gate``): added at zero, so
  the model starts as it was;
- ``--code-counts N``: adds the unigram cache (``prior.code_counts``) with its gates at their
  initial values (frames.COUNT_GATE_INIT), which already lower the held-out bits.

    python scripts/warm_start_frame_prior.py runs/old/model.safetensors runs/warm.safetensors
    python scripts/warm_start_frame_prior.py vqaudio/models/prior.safetensors \
        runs/warm.safetensors --code-counts 32
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from vqaudio.checkpoint import read_model_file
from vqaudio.config import PriorConfig
from vqaudio.prior import build_prior, save_prior
from vqaudio.strict import build


def main(source: str, target: str, code_counts: int | None) -> None:
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
    args = parser.parse_args()
    main(args.source, args.target, args.code_counts)
