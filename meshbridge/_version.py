"""meshbridge's version: its own module, so that reading it imports nothing else (pyproject reads it too)."""

__version__ = "0.1.0"
