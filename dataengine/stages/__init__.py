"""Per-document stages, one module each; `build_stages` turns the config into the fused chain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataengine.stages.base import Stage
from dataengine.stages.document import Document

if TYPE_CHECKING:
    from dataengine.config import StagesConfig

__all__ = ["Document", "Stage", "build_stages", "STAGE_ORDER", "PROSE_ONLY"]

# `code` runs before `langid` (code must not meet langid's thresholds); it labels a document code only
# when the fastText score and the text's shape agree (stages/code_text.py), so prose in any script reaches langid.
STAGE_ORDER = ("normalize", "code", "langid", "gopher", "gopher_rep", "c4", "fineweb", "toxicity", "pii")
# Stages whose rules describe natural-language prose; documents detected as code skip them.
PROSE_ONLY = frozenset({"langid", "gopher", "gopher_rep", "c4", "fineweb", "toxicity"})


def build_stages(cfg: StagesConfig) -> list[Stage]:
    from dataengine.stages.c4 import C4Quality
    from dataengine.stages.code import CodeFilter
    from dataengine.stages.fineweb import FineWebQuality
    from dataengine.stages.gopher_quality import GopherQuality
    from dataengine.stages.gopher_repetition import GopherRepetition
    from dataengine.stages.langid import LanguageIdentifier
    from dataengine.stages.normalize import Normalizer
    from dataengine.stages.pii import PiiMasker
    from dataengine.stages.toxicity import ToxicityFilter

    classes = {
        "normalize": Normalizer,
        "code": CodeFilter,
        "langid": LanguageIdentifier,
        "gopher": GopherQuality,
        "gopher_rep": GopherRepetition,
        "c4": C4Quality,
        "fineweb": FineWebQuality,
        "toxicity": ToxicityFilter,
        "pii": PiiMasker,
    }
    stages = []
    for name in STAGE_ORDER:
        stage_cfg = getattr(cfg, name)
        if stage_cfg is not None:
            stages.append(classes[name](stage_cfg))
    return stages
