"""Pure analysis of the Gaussian mechanism, shared by the accountants (the claimed ε) and the
audits (the ε lower bounds): μ-GDP conversions (``gaussian_dp``) and the privacy profiles of the
Poisson-subsampled Gaussian (``subsampled_gaussian``). No state, no torch."""
