"""privtangent: differential-privacy and unlearning audits for tangent vision transformers."""

__version__ = "0.1.0"
