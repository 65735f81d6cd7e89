"""privtangent audits layer (see SPEC.md: reports → audits → attacks → privtangent)."""
