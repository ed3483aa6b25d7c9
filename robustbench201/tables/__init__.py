"""Loading, indexing and writing results tables (dataset directories, wide matrices)."""
