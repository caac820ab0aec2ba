"""A frame prior's controls: per-frame features (``vqaudio.controls.grid``: beat grid, tempo,
chord, onsets) enter the temporal input, the depth bias, and, for a beat's or an onset's 20 ms
sub-slot, each depth slot whose code spans it (the finest levels' frames split a frame, and a
beat falls between frame boundaries)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..codes import block_slots
from ..config import PriorConfig
from ..controls.grid import HARMONY, HARMONY_FLAG, NUM_CONTROLS, ONSETS, SUB_SLOTS
from ..controls.plan import plan_buffers

# The control layers start at zero, and Adam moves a weight by about the learning rate per
# step: at a fine-tune's 3e-4 they reached 0.017 per weight in 100 steps and changed held-out
# bits by 0.001. They learn at this multiple of the run's rate (a recipe's optim.lr).
CONTROL_LR_SCALE = 10.0
CONTROL_PARAMETERS = ("control_in.", "control_depth.", "beat_slots", "onset_slots")


def add_controls(prior: nn.Module, config: PriorConfig) -> None:
    """Give ``prior`` its control layers, all at zero, so a prior warm-started from one trained
    without controls computes as before until it learns to follow them; and the plan
    statistics' buffers (``controls.plan``)."""
    prior.control_in = nn.Linear(config.controls, config.dim)
    prior.control_depth = nn.Linear(config.controls, config.depth_dim)
    prior.beat_slots = nn.Parameter(torch.zeros(config.tokens_per_block, config.depth_dim))
    if config.controls >= NUM_CONTROLS:  # the onset part: each slot sees its sub-slots' strength
        prior.onset_slots = nn.Parameter(torch.zeros(config.tokens_per_block, config.depth_dim))
    for layer in (prior.control_in, prior.control_depth):
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
    with torch.device("cpu"):  # (P, SUB_SLOTS): 1 where slot j's code spans sub-slot s
        strides = config.level_strides
        cover = torch.zeros(config.tokens_per_block, SUB_SLOTS)
        for j, (level, index) in enumerate(block_slots(strides)):
            width = strides[level] * SUB_SLOTS // strides[0]
            cover[j, index * width : (index + 1) * width] = 1.0
    prior.register_buffer("slot_cover", cover, persistent=False)
    # a prior on the first 36 columns (before onsets) has no rhythm patterns in its file
    for name, value in plan_buffers(config.controls >= NUM_CONTROLS).items():
        prior.register_buffer(name, value)


def control_terms(prior: nn.Module, controls: Tensor) -> tuple[Tensor, Tensor]:
    """controls (B, F, >= C) -> (temporal input terms (B, F, D), depth bias terms (B, F, P, d));
    a prior trained on fewer columns than ``grid.NUM_CONTROLS`` reads the first ones."""
    controls = controls[..., : prior.config.controls]
    # (B, F, P); at most one beat falls in an 80 ms frame, so no slot sees more than 1, and the
    # terms stay linear in the controls (Sampling.control_scale scales them by scaling these)
    beat = controls[..., :SUB_SLOTS] @ prior.slot_cover.T
    depth = prior.control_depth(controls)[:, :, None] + beat[..., None] * prior.beat_slots
    if hasattr(prior, "onset_slots"):  # the mean onset strength over each slot's sub-slots
        cover = prior.slot_cover / prior.slot_cover.sum(1, keepdim=True)
        onset = controls[..., ONSETS.start : ONSETS.start + SUB_SLOTS] @ cover.T  # (B, F, P)
        depth = depth + onset[..., None] * prior.onset_slots
    return prior.control_in(controls), depth


def window_controls(prior: nn.Module, controls: Tensor | None, count: int) -> Tensor | None:
    """controls (B, >= count - 1, C) -> (B, count, C): the window's frames, the last row
    repeated for the extra frame the window predicts into; None without controls."""
    if controls is None or not prior.config.controls:
        return None
    if controls.shape[1] < count:
        pad = controls[:, -1:].expand(-1, count - controls.shape[1], -1)
        controls = torch.cat([controls, pad], dim=1)
    return controls[:, :count].to(prior.frame_start.dtype)


def parameter_groups(prior: nn.Module) -> list[dict]:
    """The optimizer's groups: the control layers at ``CONTROL_LR_SCALE`` times the rate."""
    named = list(prior.named_parameters())
    controls = [p for name, p in named if name.startswith(CONTROL_PARAMETERS)]
    rest = [p for name, p in named if not name.startswith(CONTROL_PARAMETERS)]
    if not controls:
        return [{"params": rest}]
    return [{"params": rest}, {"params": controls, "lr_scale": CONTROL_LR_SCALE}]


PROMPT_CHORD = -2  # a prompt's frames: the unigram cache counts them under every chord


def chord_ids(controls: Tensor, prompt_frames: int = 0) -> Tensor:
    """controls (B, F, C) -> (B, F) int64: each frame's chord (``controls.chords`` ids), -1 where
    the harmony part is off, ``PROMPT_CHORD`` in the first ``prompt_frames``."""
    chord = controls[..., HARMONY.start : HARMONY_FLAG].argmax(-1)
    chord = torch.where(controls[..., HARMONY_FLAG] > 0, chord, -1)
    chord[:, :prompt_frames] = PROMPT_CHORD
    return chord


def window_rows(rows: Tensor | None, first: int, count: int) -> Tensor | None:
    """Per-frame rows (B, F_all, ...) of frames first .. first + count - 1 (the last row
    repeated past F_all)."""
    if rows is None:
        return None
    index = torch.arange(first, first + count, device=rows.device).clamp(max=rows.shape[1] - 1)
    return rows[:, index]
