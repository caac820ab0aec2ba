"""Expected failures. Each message names the thing, the problem and the way out."""


class VqaudioError(Exception):
    """Base class of every error vqaudio raises on purpose (the CLI prints it as one line)."""


class ConfigError(VqaudioError):
    """A recipe or config value is unknown, mistyped or out of range."""


class AudioError(VqaudioError):
    """Audio could not be read, is empty, or holds non-finite samples."""


class FormatError(VqaudioError):
    """A .vqa file is corrupt, truncated, of an unknown version or made with another codec."""


class CheckpointError(VqaudioError):
    """A model file is missing, corrupt, of an unknown format or of the wrong kind."""


class UsageError(VqaudioError):
    """A malformed option value (an unknown chord, a tempo out of range): exit code 2."""
