"""vqaudio: a neural audio codec with hierarchical multi-scale VQ codes, and priors over them."""

__version__ = "0.1.0"

from .checkpoint import checkpoint_id, load_codec, save_codec  # noqa: E402
from .codec import Codec  # noqa: E402
from .codes import Codes  # noqa: E402
from .compress import compress, decompress  # noqa: E402
from .config import CodecConfig  # noqa: E402
from .errors import (  # noqa: E402
    AudioError,
    CheckpointError,
    ConfigError,
    FormatError,
    VqaudioError,
)
from .prior import Prior, load_prior  # noqa: E402

__all__ = [
    "AudioError",
    "CheckpointError",
    "Codec",
    "CodecConfig",
    "Codes",
    "ConfigError",
    "FormatError",
    "Prior",
    "VqaudioError",
    "__version__",
    "checkpoint_id",
    "compress",
    "decompress",
    "load_codec",
    "load_prior",
    "save_codec",
]
