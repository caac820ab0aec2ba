"""Where does a prior with controls use them? Held-out bits per level with the controls, without,
with one part dropped, with one path (temporal input / depth bias) zeroed; and the size of the
control terms beside what they are added to.

    python experiments/controls_insides.py PRIOR --run runs/ctrl3   # codes/ and grids/ of a run
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch

from vqaudio import load_codec, load_prior
from vqaudio.controls.grid import drop, render
from vqaudio.controls.store import cached_grid
from vqaudio.prior.frame_controls import control_terms
from vqaudio.recipe import load_recipe
from vqaudio.train.data import recipe_files
from vqaudio.train.prior_task import cached_tokens


def windows(prior, codec, run: Path, clips: int):
    recipe = load_recipe("recipes/music-24k-prior-controls.yaml")
    _, val = recipe_files(recipe.data)
    config, per_block = prior.config, prior.config.tokens_per_block
    frame = codec.config.block_samples / codec.config.sample_rate
    tokens, controls = [], []
    for path in val:
        codes = cached_tokens(codec, path, config.num_levels, run / "codes")
        grid = cached_grid(path, run / "grids")
        usable = len(codes) // per_block * per_block
        for start in range(0, usable - config.context_tokens + 1, config.context_tokens)[:clips]:
            tokens.append(np.asarray(codes[start : start + config.context_tokens], np.int64))
            controls.append(render(grid, True, config.context_blocks, frame, start // per_block))
    return torch.from_numpy(np.stack(tokens)), torch.from_numpy(np.stack(controls))


@torch.no_grad()
def level_bits(prior, tokens, controls) -> list[float]:
    nll = prior.token_nll(tokens, controls=controls).view(
        tokens.shape[0], -1, prior.tokens_per_block
    )
    return [float(nll[:, :, slots].mean() / np.log(2)) for slots in prior.level_slots]


def zeroed(prior, part: str):
    other = copy.deepcopy(prior)
    with torch.no_grad():
        layer = other.control_in if part == "temporal" else other.control_depth
        layer.weight.zero_()
        layer.bias.zero_()
        if part == "depth":
            other.beat_slots.zero_()
    return other


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("prior", type=Path)
    parser.add_argument("--run", type=Path, default=Path("runs/ctrl3"))
    parser.add_argument("--clips", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    prior, codec = load_prior(args.prior, "cpu").float(), load_codec(None, "cpu")
    tokens, controls = windows(prior, codec, args.run, args.clips)
    cases = {
        "controls": (prior, controls),
        "none": (prior, None),
        "beat grid only": (prior, torch.from_numpy(drop(controls.numpy(), False, True, True))),
        "harmony only": (prior, torch.from_numpy(drop(controls.numpy(), True, False, True))),
        "onsets only": (prior, torch.from_numpy(drop(controls.numpy(), True, True, False))),
        "all but onsets": (prior, torch.from_numpy(drop(controls.numpy(), False, False, True))),
        "temporal path off": (zeroed(prior, "temporal"), controls),
        "depth path off": (zeroed(prior, "depth"), controls),
    }
    out = {name: level_bits(model, tokens, given) for name, (model, given) in cases.items()}
    for name, bits in out.items():
        print(f"{name:20s} mean {np.mean(bits):.3f} | " + " ".join(f"{b:.3f}" for b in bits))
    with torch.no_grad():
        temporal, depth = control_terms(prior, controls.float())
        frames = prior._frames(tokens)
        base = prior._frame_inputs(frames)
    rms = lambda x: float(x.pow(2).mean().sqrt())  # noqa: E731
    sizes = {
        "temporal input rms": rms(base),
        "control term rms (temporal)": rms(temporal),
        "control term rms (depth)": rms(depth),
        "depth_in weight rms": rms(prior.depth_in.weight),
    }
    print(json.dumps(sizes, indent=1))
    print(json.dumps({"bits_per_level": out, "sizes": sizes}))


if __name__ == "__main__":
    main()
