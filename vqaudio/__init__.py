"""vqaudio: a neural audio codec with hierarchical multi-scale VQ codes, and priors over them.

The public API matches the CLI, its defaults included::

    codec = vqaudio.load_codec()  # the shipped codec; device "auto"
    vqaudio.compress(codec, "song.wav", "song.vqa", bitrate=6000)  # bits/s: CLI --bitrate 6
    vqaudio.decompress("song.vqa", "song.wav", codec)
    prior = vqaudio.load_prior()
    wav = vqaudio.generate(prior, codec, seconds=30, seed=1)  # (1, C, T), vqaudio.SHIPPED

Units: ``bitrate`` is bits/s in the library and kbps on the command line; rates are Hz, lengths
samples, durations seconds. The public names load on first use (PEP 562), so ``import vqaudio``
and what needs no model (the .vqa header and container, errors, configs) do not import torch:
``vqaudio --help`` and ``vqaudio info song.vqa`` answer at once.
"""

from __future__ import annotations

from .lazy import lazy_names
from .version import __version__ as __version__

_PUBLIC = {  # name -> the submodule that defines it
    "AudioError": "errors",
    "CheckpointError": "errors",
    "Codec": "codec",
    "CodecConfig": "config",
    "Codes": "codes",
    "ConfigError": "errors",
    "FormatError": "errors",
    "Prior": "prior",
    "Request": "controls.requests",
    "Sampling": "prior.sampling",
    "SHIPPED": "prior.sampling",
    "VqaudioError": "errors",
    "checkpoint_id": "checkpoint",
    "compress": "vqa.compress",
    "decompress": "vqa.compress",
    "save_codec": "codec.io",
    "generate": "generation",  # prompt -> tokens -> audio
}
__all__ = sorted([*_PUBLIC, "__version__", "load_codec", "load_prior"])


def _device(device: str):
    """'auto' (the CLI's default): CUDA when present, else the CPU; any other name as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_codec(path=None, device: str = "auto"):
    """Load a codec file (None: the codec shipped in the package) in eval mode on ``device``
    ("auto": CUDA when present, else CPU, as ``vqaudio compress --device auto``).

    Raises CheckpointError for a file that is not a codec of this vqaudio."""
    from .codec.io import load_codec as load

    return load(path, _device(device))


def load_prior(path=None, device: str = "auto"):
    """Load a prior file (None: the prior shipped in the package) in eval mode on ``device``
    ("auto": CUDA when present, else CPU, as ``vqaudio generate --device auto``).

    Raises CheckpointError for a file that is not a prior of this vqaudio."""
    from .prior import load_prior as load

    return load(path, _device(device))


__getattr__ = lazy_names(__name__, _PUBLIC)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
