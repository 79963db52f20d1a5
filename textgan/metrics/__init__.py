"""Evaluation metrics for generated text."""
from textgan.metrics.bleu import PROTOCOLS, bleu, self_bleu
from textgan.metrics.novelty import copy_fraction

__all__ = ["PROTOCOLS", "bleu", "copy_fraction", "self_bleu"]
