"""dataengine: a streaming pretraining data engine on Ray Data.

`dataengine.process(docs)` runs the per-document stages in-process; `dataengine.run(cfg, ...)`
runs phase 1 on Ray. Heavy modules load on first use so `import dataengine` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["process", "run", "PipelineConfig", "load_pipeline_config"]


def __getattr__(name: str):
    if name == "process":
        from dataengine.api import process

        return process
    if name == "run":
        from dataengine.runner import run

        return run
    if name == "PipelineConfig":
        from dataengine.config import PipelineConfig

        return PipelineConfig
    if name == "load_pipeline_config":
        from dataengine.config import load_pipeline_config

        return load_pipeline_config
    raise AttributeError(name)
