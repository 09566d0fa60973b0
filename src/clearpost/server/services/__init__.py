"""Use cases. Services import ``core`` and the stores; they know nothing about HTTP."""
