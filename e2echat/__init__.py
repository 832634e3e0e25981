"""e2echat: end-to-end encrypted chat — the library that bots and the terminal client share."""

__version__ = "0.1.0"
