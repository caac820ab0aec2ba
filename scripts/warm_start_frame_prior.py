"""Warm start a frame prior from a checkpoint of an earlier vqaudio frame prior, keeping what it
computes and adding what the current model has:

- small token embeddings (before the unit-scale init of vqaudio/prior/frames.py): the token rows
  are scaled to unit RMS and the frame input projection down by the same factor, so the temporal
  transformer computes exactly what it did, while the depth's token term grows to the scale of
  the rest of its input;
- no previous-frame path (``depth_previous``) or copy gate (``copy_gate``): added at zero, so
  the model starts as it was.

    python scripts/warm_start_frame_prior.py runs/old/model.safetensors runs/warm.safetensors
"""

from __future__ import annotations

import sys

import torch

from vqaudio.checkpoint import read_model_file
from vqaudio.config import PriorConfig
from vqaudio.prior import build_prior, save_prior
from vqaudio.strict import build


def main(source: str, target: str) -> None:
    state, raw, metadata = read_model_file(source, "prior")
    prior = build_prior(build(PriorConfig, raw, "prior"))
    missing, unexpected = prior.load_state_dict(state, strict=False)
    added = {"depth_previous.weight", "copy_gate.weight", "copy_gate.bias"}
    if unexpected or set(missing) - added:
        raise SystemExit(f"{source}: not a frame prior this script knows ({missing}, {unexpected})")
    with torch.no_grad():
        for name in missing:  # each added path starts at zero: the model computes what it did
            prior.get_parameter(name).zero_()
        tokens = prior.token_embedding.weight[: prior.start_id]  # the start row keeps its scale
        scale = 1.0 / float(tokens.pow(2).mean().sqrt())
        if scale > 2.0:
            tokens.mul_(scale)
            prior.frame_in.weight.div_(scale)
    save_prior(
        prior, target, metadata["vqaudio.codec_id"], codec_path=metadata.get("vqaudio.codec_path")
    )
    print(f"{source} -> {target}: token embeddings x {scale:.1f}; added at zero: {missing}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
