"""Assets, grouped by domain."""
