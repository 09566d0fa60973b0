"""Per-domain SQL stores. Each public method runs one named transaction."""
