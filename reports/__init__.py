"""Compliance reports rendered from audit results (reports → audits → attacks → privtangent)."""
