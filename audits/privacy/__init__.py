"""Empirical privacy audits: lower bounds on ε from membership-inference outcomes.

Every number produced here is a *lower bound* on the ε of the audited training run, valid at
the stated confidence; it is compared with the ε the accountant claims.

Pure math (no models): ``clopper_pearson`` (threshold attacks), ``one_run`` (Steinke et al.
2023's binomial bound), ``fdp`` (the f-DP one-run bound), ``power`` (the most a sample size can
certify), ``ideal`` (simulated ideal mechanisms), ``game`` (guesses and bounds of a canary game),
``claims`` (the claim under test), ``validation``, ``readout_ceiling`` (how much of μ the
optimizer leaves in the final model). Runs and audits: ``canaries`` and
``canary_runs`` (white-box gradient canaries), ``whitebox`` and ``blackbox`` (the two audits).
"""

from audits.privacy.clopper_pearson import clopper_pearson_interval, epsilon_lower_bound
from audits.privacy.fdp import gdp_one_run_epsilon_lower_bound
from audits.privacy.one_run import one_run_epsilon_lower_bound

__all__ = ["clopper_pearson_interval", "epsilon_lower_bound", "gdp_one_run_epsilon_lower_bound",
           "one_run_epsilon_lower_bound"]
