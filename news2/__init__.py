"""NEWS2, exactly: a pure scorer for one set (``score``) or millions (``score_many``).

Implements RCP NEWS2 (2017) Charts 1, 3 and 4 with this project's decisions
(docs: shared/domain/NEWS2.md): half-up rounding at the chart's resolution,
incomplete sets never scored as normal, implausible input rejected. Imports only
the standard library and numpy.
"""

from news2.batch import News2Batch
from news2.chart import BANDS, ITEMS, LIMITS, Band
from news2.encoding import encode_consciousness
from news2.exceptions import InvalidVitalSignError
from news2.response import (
    ALERT_LEVELS,
    AlertLevel,
    ClinicalResponse,
    EscalationPolicy,
    alert_level,
    clinical_response,
    policy_from_spec,
)
from news2.scoring import News2Result, score
from news2.vectorised import score_many

__all__ = [
    "ALERT_LEVELS",
    "BANDS",
    "ITEMS",
    "LIMITS",
    "AlertLevel",
    "Band",
    "ClinicalResponse",
    "EscalationPolicy",
    "InvalidVitalSignError",
    "News2Batch",
    "News2Result",
    "alert_level",
    "clinical_response",
    "encode_consciousness",
    "policy_from_spec",
    "score",
    "score_many",
]
