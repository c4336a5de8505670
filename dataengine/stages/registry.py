"""The stage chain in its order: adding a stage is one class and one entry here.

Each class carries its config key (`name`), its settings (`config_class`) and whether code skips it
(`prose_only`); `dataengine.config.StagesConfig` and the processor are built from this list.
`code` runs before `langid` (code must not meet langid's thresholds); it labels a document code only
when the fastText score and the text's shape agree (stages/code_text.py), so prose in any script
reaches langid. `category` runs right after langid: the rule stages' and quality's per-category
thresholds (`by_category`) and quality's exemptions read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataengine.stages.base import Stage
from dataengine.stages.c4 import C4Quality
from dataengine.stages.category import CategoryClassifier
from dataengine.stages.code import CodeFilter
from dataengine.stages.fineweb import FineWebQuality
from dataengine.stages.gopher_quality import GopherQuality
from dataengine.stages.gopher_repetition import GopherRepetition
from dataengine.stages.langid import LanguageIdentifier
from dataengine.stages.normalize import Normalizer
from dataengine.stages.pii import PiiMasker
from dataengine.stages.quality import QualityScorer
from dataengine.stages.toxicity import ToxicityFilter

if TYPE_CHECKING:
    from pydantic import BaseModel

STAGES: tuple[type[Stage], ...] = (
    Normalizer,
    CodeFilter,
    LanguageIdentifier,
    CategoryClassifier,
    GopherQuality,
    GopherRepetition,
    C4Quality,
    FineWebQuality,
    QualityScorer,
    ToxicityFilter,
    PiiMasker,
)
STAGE_ORDER = tuple(stage.name for stage in STAGES)
PROSE_ONLY = frozenset(stage.name for stage in STAGES if stage.prose_only)


def build_stages(cfg: BaseModel) -> list[Stage]:
    """The configured stages in chain order (a stage set to null is left out)."""
    return [stage(getattr(cfg, stage.name)) for stage in STAGES if getattr(cfg, stage.name) is not None]
