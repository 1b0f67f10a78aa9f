"""Repository tools: generators of committed files (run from the repository root)."""
