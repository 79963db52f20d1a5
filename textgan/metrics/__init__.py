"""Evaluation metrics for generated text."""
from textgan.metrics.bleu import PROTOCOLS, bleu, bleu_metrics, self_bleu
from textgan.metrics.coverage import unseen_fraction
from textgan.metrics.novelty import copy_fraction, copy_fraction_rows

__all__ = ["PROTOCOLS", "bleu", "bleu_metrics", "copy_fraction", "copy_fraction_rows", "self_bleu", "unseen_fraction"]
