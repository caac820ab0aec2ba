"""The `vqaudio` command line (installed as the `vqaudio_cli` package)."""
