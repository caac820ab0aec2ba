"""Evaluation metrics of decoded and generated audio."""
