"""Storage: the only writer of the database and the evidence store."""
