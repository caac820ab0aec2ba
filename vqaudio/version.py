"""The version of vqaudio (package metadata and model files record it)."""

__version__ = "0.1.0"
