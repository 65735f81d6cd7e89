"""Empirical privacy audits: lower bounds on ε from membership-inference outcomes.

Every number produced here is a *lower bound* on the ε of the audited training run, valid
at the stated confidence; it is compared with the ε the accountant claims.
"""

from importlib import import_module

# public name -> submodule that defines it (imported on first use)
_EXPORTS = {
    "epsilon_lower_bound": "audits.privacy.clopper_pearson",
    "clopper_pearson_interval": "audits.privacy.clopper_pearson",
    "one_run_epsilon_lower_bound": "audits.privacy.one_run",
    "gdp_one_run_epsilon_lower_bound": "audits.privacy.fdp",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'audits.privacy' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
