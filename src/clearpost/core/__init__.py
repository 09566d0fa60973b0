"""Pure building blocks: ids, canonical JSON, errors, clock, crypto wrappers. No I/O here."""
