"""Dataset facts (names, classes, normalization) and readers for the standard on-disk formats."""
