"""Package data shipped as ``robustbench201._data`` (the embedded default table). Built by scripts/build_table.py."""
