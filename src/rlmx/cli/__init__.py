"""The ``rlmx`` command (see ``rlmx --help``)."""

from .main import main

__all__ = ["main"]
