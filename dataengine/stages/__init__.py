"""Per-document stages, one module each; `registry.STAGES` lists them in chain order and
`build_stages` turns the config into the fused chain."""

from __future__ import annotations

from dataengine.stages.base import Stage
from dataengine.stages.document import Document
from dataengine.stages.registry import PROSE_ONLY, STAGE_ORDER, STAGES, build_stages

__all__ = ["Document", "Stage", "build_stages", "STAGES", "STAGE_ORDER", "PROSE_ONLY"]
