"""recft.evaluate: full-ranking evaluation, top-K metrics, segments, the Scorer protocol.

Modules:
    scorer     Scorer: ``score_users(users, history) -> (B, catalog_size)``
    ranking    top-K lists of a score block, seen items excluded, relevance of each slot
    metrics    vectorised top-K metrics (RecBole definitions), coverage, RMSE/MAE/AUC
    evaluate   evaluate(model, test, exclude=train): chunked full ranking, seen items excluded
    segments   metrics by user activity bucket and by head / tail items

The package is itself callable, so ``recft.evaluate(model, test, exclude=train)`` and
``recft.evaluate.topk_metrics(...)`` both work.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from recft.evaluate.evaluate import binary_metrics, evaluate, rating_metrics
from recft.evaluate.metrics import (
    ALL_METRICS,
    RANKING_METRICS,
    auc,
    mae,
    rmse,
    topk_metrics,
)
from recft.evaluate.scorer import Scorer

__all__ = [
    "ALL_METRICS",
    "RANKING_METRICS",
    "Scorer",
    "auc",
    "binary_metrics",
    "evaluate",
    "mae",
    "rating_metrics",
    "rmse",
    "topk_metrics",
]


class _CallablePackage(types.ModuleType):
    """The ``recft.evaluate`` package, callable as the ``evaluate`` function."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.__dict__["evaluate"](*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
# inspect.signature(recft.evaluate) follows __wrapped__ to the function's signature
__wrapped__ = evaluate
