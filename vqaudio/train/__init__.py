"""Training: recipes -> run folders (codec and prior stages share one loop)."""

from .loop import learning_rate, read_metrics, resume_recipe, train

__all__ = ["learning_rate", "read_metrics", "resume_recipe", "train"]
