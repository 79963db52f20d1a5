"""Evaluation metrics for generated text."""
from textgan.metrics.bleu import PROTOCOLS, bleu, self_bleu

__all__ = ["PROTOCOLS", "bleu", "self_bleu"]
