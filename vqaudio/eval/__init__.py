"""Evaluation of audio: figures for generated and real music alike."""
