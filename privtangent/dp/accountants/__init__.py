"""Privacy accountants, by name: "prv" (default), "rdp" (cross-check), "gdp" (exact when q = 1).

`get_accountant("prv", sample_rate=1.0)` returns the exact Gaussian-DP accountant, because
full-batch DP-GD is exactly μ-GDP with μ = √T/σ.
"""

from privtangent.dp.accountants.base import Accountant, available, get_accountant, register
from privtangent.dp.accountants.gaussian import GaussianAccountant
from privtangent.dp.accountants.prv import PRVAccountant, prv_bounds
from privtangent.dp.accountants.rdp import RDPAccountant
from privtangent.dp.analysis.gaussian_dp import gdp_delta, gdp_epsilon, gdp_mu

__all__ = [
    "Accountant",
    "GaussianAccountant",
    "PRVAccountant",
    "RDPAccountant",
    "available",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu",
    "get_accountant",
    "prv_bounds",
    "register",
]
