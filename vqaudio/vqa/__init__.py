"""The .vqa file: its header and container, band-level and entropy coding, channels, rate,
streaming, and compress/decompress (docs/FORMAT.md is the spec)."""
