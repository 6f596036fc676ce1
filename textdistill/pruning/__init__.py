"""Structured pruning of attention heads and feed-forward neurons.

:func:`score_importance` measures each unit's first-order importance on labelled
batches, :func:`plan_pruning` picks the least important units for target fractions, and
:func:`apply_pruning` removes them, leaving a model that plain transformers saves and
loads. ``textdistill prune`` (:mod:`textdistill.prune`) runs the three on a model
directory and writes the result.
"""

from .importance import (
    SCORING_BATCHES,
    Importance,
    PruningPlan,
    check_fractions,
    normalized_head_scores,
    plan_pruning,
    removed_counts,
    score_importance,
)
from .layout import find_blocks
from .surgery import apply_pruning, slice_zeroed_heads, zeroed_heads

__all__ = ["SCORING_BATCHES", "Importance", "PruningPlan", "apply_pruning", "check_fractions",
           "find_blocks", "normalized_head_scores", "plan_pruning", "removed_counts",
           "score_importance", "slice_zeroed_heads", "zeroed_heads"]
