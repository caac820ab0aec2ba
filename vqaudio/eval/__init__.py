"""Evaluation of audio: figures for decoded, generated and real music alike."""
