"""genzoo: small, readable PyTorch reference implementations of six generative model families."""

__version__ = "0.1.0"
