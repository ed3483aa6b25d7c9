"""``python -m robustbench201.cli`` runs the ``rb201`` CLI."""

from . import main

main()
