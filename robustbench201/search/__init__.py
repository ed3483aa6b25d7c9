"""Architecture search: DSRNA on the supernet, NAS baselines on the table, and analyses of the table."""
