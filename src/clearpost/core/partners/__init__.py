"""Partners: the scope catalogue, agreements and pairwise pseudonyms (pure)."""
