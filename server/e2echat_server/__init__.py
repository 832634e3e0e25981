"""The e2echat relay: it routes opaque ciphertext and public keys and never reads a message."""

__version__ = "0.1.0"
