"""The e2echat terminal client."""

__version__ = "0.1.0"
