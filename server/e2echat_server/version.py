"""The relay's version, in its own module so every other module can import it cycle-free."""

__version__ = "0.1.0"
