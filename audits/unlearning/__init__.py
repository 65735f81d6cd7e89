"""The unlearning audit: its scenario (``scenario``), the exactness of a forget request
(``exactness``), membership inference before and after it (``membership``), and the audit that
composes them (``audit``)."""

from audits.unlearning.audit import SECTION, audit_unlearning, run_unlearning_audit
from audits.unlearning.exactness import exactness_rows
from audits.unlearning.membership import mia_before_after, permutation_test
from audits.unlearning.scenario import UnlearningScenario, build_unlearning_scenario

__all__ = ["SECTION", "UnlearningScenario", "audit_unlearning", "build_unlearning_scenario", "exactness_rows",
           "mia_before_after", "permutation_test", "run_unlearning_audit"]
