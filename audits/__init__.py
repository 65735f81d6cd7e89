"""The audits layer: privacy (black-box and white-box), unlearning and utility audits, and the main
job that composes them (``pipeline``). Dependencies point one way: reports → audits → attacks →
privtangent."""
