"""Task relatedness and grouping: hidden-unit sharing (Caruana 1997), gradient agreement,
look-ahead affinity (TAG, Fifty et al. 2021), and the choice of which tasks to train together
(TAG's objective; Standley et al. 2020's higher-order approximation).

    from polytask.relate import relate, choose_groups
    result = relate(frame, ["y1", "y2", "y3"], methods="all", every=10)
    result.matrices["tag"].frame          # T x T DataFrame, row i onto column j
    choose_groups(result.matrices["tag"], max_groups=2).groups
"""

from __future__ import annotations

from polytask.relate.affinity import AffinityResult, LookaheadAffinity, lookahead_affinity
from polytask.relate.agreement import AgreementResult, GradientAgreement, gradient_cosines
from polytask.relate.choose import SOURCES, GroupReport, group_tasks
from polytask.relate.compare import GroupComparison, compare_groups
from polytask.relate.grouping import EXACT_LIMIT, Grouping, choose_groups
from polytask.relate.lookahead import lookahead_parameters
from polytask.relate.matrix import TaskMatrix
from polytask.relate.measure import METHODS, Relatedness, measure_relatedness, relate
from polytask.relate.sharing import hidden_unit_sharing, spearman_matrix, unit_sensitivity
from polytask.relate.standley import PairwiseRuns, pairwise_runs
from polytask.relate.subsets import subset_prepared

__all__ = [
    "EXACT_LIMIT", "METHODS", "SOURCES", "AffinityResult", "AgreementResult", "GradientAgreement", "GroupComparison",
    "GroupReport", "Grouping", "LookaheadAffinity", "PairwiseRuns", "Relatedness", "TaskMatrix", "choose_groups",
    "compare_groups", "gradient_cosines", "group_tasks", "hidden_unit_sharing", "lookahead_affinity",
    "lookahead_parameters", "measure_relatedness", "pairwise_runs", "relate", "spearman_matrix", "subset_prepared",
    "unit_sensitivity",
]
