"""In-loop evaluation for the trainer: held-out bits-per-byte per domain and probe values at an interval.

Its config is checked when the train config is loaded (eval.checks.check_inloop_config), so a missing
held-out or probe file fails at start-up, not at the first evaluation. Built once before training
(documents and probes are loaded then, so every call measures the same set and values are comparable
over time); called with the live model. Under FSDP every rank must call it: all ranks run the same
forward passes, and only the main rank should log the returned dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from eval.checks import require_inloop_inputs
from eval.config import EvalConfig, load_eval_config
from eval.heldout import load_heldout
from eval.models import module_scorer
from eval.perplexity import evaluate_perplexity
from eval.probes import load_probes, run_probes


class InLoopEval:
    """`hook(model, step) -> {"eval/bpb": .., "eval/bpb/<domain>": .., "eval/ppl/<domain>": .., "probe/<name>": ..}`."""

    def __init__(
        self,
        config: EvalConfig | str | Path | None,
        tokenizer: Any,
        max_length: int,
        device: torch.device | str = "cpu",
    ) -> None:
        """`tokenizer`: a transformers tokenizer or a directory holding one (the trainer's RUN/tokenizer)."""
        self.cfg = config if isinstance(config, EvalConfig) else load_eval_config(config)
        require_inloop_inputs(self.cfg, str(config) if not isinstance(config, EvalConfig) else "eval config")
        if isinstance(tokenizer, str | Path):
            from eval.trainer_backend import load_tokenizer

            tokenizer = load_tokenizer(tokenizer)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.device = torch.device(device)
        paths = [self.cfg.resolve(p, "data.heldout") for p in self.cfg.data.heldout]
        self.docs = load_heldout(paths, self.cfg.data) if self.cfg.perplexity.enabled and paths else []
        probes = self.cfg.probes
        self.probes = (
            load_probes([self.cfg.resolve(p, "probes.files") for p in probes.files]) if probes.enabled else []
        )

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, float]:
        scorer = module_scorer(model, self.tokenizer, self.max_length, self.device, f"step-{step}", "trainer")
        scorer.token_budget = self.cfg.token_budget
        scorer.context_prefix = self.cfg.context_prefix
        was_training = model.training
        model.eval()
        try:
            metrics: dict[str, float] = {}
            if self.docs:
                pp = self.cfg.perplexity
                result = evaluate_perplexity(scorer, self.docs, pp.window, pp.stride, pp.max_window)
                metrics["eval/bpb"] = result["overall"]["bpb"]
                metrics["eval/ppl"] = result["overall"]["ppl"]
                for domain, row in result["domains"].items():
                    metrics[f"eval/bpb/{domain}"] = row["bpb"]
                    metrics[f"eval/ppl/{domain}"] = row["ppl"]
            for name, row in run_probes(scorer, self.probes).items():
                metrics[f"probe/{name}"] = float(row["value"])
            return metrics
        finally:
            model.train(was_training)
