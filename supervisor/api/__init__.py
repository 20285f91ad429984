"""HTTP API under /api/v1. Domain errors become HTTP errors only here."""
