"""``python -m rlmx.cli`` runs the ``rlmx`` command."""

from .main import main

__all__: list[str] = []

main()
