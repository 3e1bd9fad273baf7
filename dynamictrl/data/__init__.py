"""Data: video IO, datasets and the synthetic puppet world."""
