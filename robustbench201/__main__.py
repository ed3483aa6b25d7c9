"""``python -m robustbench201`` runs the ``rb201`` CLI."""

from .cli import main

main()
