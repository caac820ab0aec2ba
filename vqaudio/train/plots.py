"""PNG plots written into the run folder at each evaluation (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path, suffix=".tmp.png") as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")


def log_mel(wav: np.ndarray, sample_rate: int, n_mels: int = 80) -> np.ndarray:
    """(T,) -> (n_mels, frames) log10 mel magnitude."""
    import torch

    from ..codec.losses import mel_spectrogram

    mel = mel_spectrogram(
        torch.from_numpy(np.ascontiguousarray(wav)).float(), sample_rate, 1024, n_mels
    )
    return mel.clamp(min=1e-5).log10().numpy()


def plot_spectrograms(
    wav: np.ndarray, wav_hat: np.ndarray, sample_rate: int, path: Path, title: str
) -> None:
    """Original vs reconstructed log-mel spectrogram of one clip (T,)."""
    plt = _figure()
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for ax, signal, name in zip(
        axes, (wav, wav_hat), ("original", f"reconstructed ({title})"), strict=True
    ):
        ax.imshow(
            log_mel(signal, sample_rate),
            origin="lower",
            aspect="auto",
            vmin=-5,
            vmax=1.5,
            cmap="magma",
        )
        ax.set_title(name)
        ax.set_ylabel("mel bin")
    axes[-1].set_xlabel("frame")
    _save(fig, path)
    plt.close(fig)


def plot_usage(usage: list[float], perplexity: list[float], codebook_size: int, path: Path) -> None:
    """Bar chart of per-level codebook usage (fraction of codes used) and perplexity."""
    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    levels = np.arange(len(usage))
    axes[0].bar(levels, usage)
    axes[0].set_ylim(0, 1)
    axes[0].set_title("codebook usage (fraction of codes used per batch)")
    axes[1].bar(levels, np.asarray(perplexity) / codebook_size)
    axes[1].set_ylim(0, 1)
    axes[1].set_title("perplexity / codebook_size")
    for ax in axes:
        ax.set_xlabel("level (coarse -> fine)")
    _save(fig, path)
    plt.close(fig)


def plot_losses(history: list[dict], path: Path, keys: tuple[str, ...]) -> None:
    """Loss curves of the logged training metrics and the evaluation metrics over steps."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(8, 4))
    for key in keys:
        points = [(h["step"], h[key]) for h in history if key in h]
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, label=key, marker="." if len(points) < 30 else None)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)
