"""privtangent reports layer (see SPEC.md: reports → audits → attacks → privtangent)."""
