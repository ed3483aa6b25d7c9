"""Storage: the results schema (single source of truth), atomic writes, merge and validation."""
