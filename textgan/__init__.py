"""textgan: generative adversarial networks for text, in PyTorch."""

__version__ = "0.1.0"
