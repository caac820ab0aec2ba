"""Warm start for a frame prior trained with small token embeddings (vqaudio before the
unit-scale init of vqaudio/prior/frames.py): scale the embedding table's token rows to unit RMS and the frame
input projection down by the same factor, so the temporal transformer computes exactly what it
did, while the depth transformer's token term grows to the scale of the rest of its input.

    python scripts/rescale_frame_prior.py runs/old/model.safetensors runs/rescaled.safetensors
"""

from __future__ import annotations

import sys

import torch

from vqaudio.prior import load_prior, save_prior


def main(source: str, target: str) -> None:
    prior = load_prior(source)
    with torch.no_grad():
        tokens = prior.token_embedding.weight[: prior.start_id]  # the start row keeps its scale
        scale = 1.0 / float(tokens.pow(2).mean().sqrt())
        tokens.mul_(scale)
        prior.frame_in.weight.div_(scale)
    save_prior(prior, target, prior.codec_id, codec_path=prior.codec_path)
    print(f"{source} -> {target}: token embeddings x {scale:.1f}, frame_in / {scale:.1f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
