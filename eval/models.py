"""A causal LM seen only through token log-probabilities and greedy decoding.

Every eval part talks to `Scorer`, so the same code measures a Hugging Face directory (a base model before
continued pretraining) and the project's own trainer checkpoints. A backend only supplies a function
mapping input ids [B, T] to logits [B, T, V] and a tokenizer; batches are right-padded, which needs no
attention mask because a causal model never looks at later (padding) positions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataengine.cpu_linear import use_onednn_linears
from eval.checks import is_hf_dir

Forward = Callable[[torch.Tensor], Any]


@dataclass
class TokenScores:
    """Per-token log P(token | prefix) for the scored part of one sequence, and whether each was the argmax."""

    logprobs: np.ndarray
    is_argmax: np.ndarray

    @property
    def total(self) -> float:
        return float(self.logprobs.sum())


@dataclass
class ContinuationScore:
    logprob: float  # sum of log P over the continuation's tokens (natural log)
    n_tokens: int
    greedy: bool  # every continuation token was the model's top choice


def _logits_of(output: Any) -> torch.Tensor:
    """Accept the output shapes of HF models (`.logits`), tuples (logits first) and plain tensors."""
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, tuple | list):
        return output[0]
    return output


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def place(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move to device and dtype in eval mode; on CPU, fp32 linear layers score through oneDNN's GEMM
    as in training (dataengine/cpu_linear.py: about twice MKL's on AMD CPUs)."""
    model.to(device=device, dtype=dtype).eval()
    if device.type == "cpu":
        use_onednn_linears(model, "auto")
    return model


@dataclass
class Scorer:
    """Log-probabilities and greedy continuations of a causal LM, batched under a token budget."""

    forward: Forward
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    max_length: int
    device: torch.device
    name: str
    backend: str  # "hf" or "trainer"
    info: dict[str, Any] = field(default_factory=dict)  # JSON-ready facts for results.json: step, params ...
    module: torch.nn.Module | None = None  # the underlying model, when there is one (for train/eval mode)
    token_budget: int = 8192

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    @property
    def start_ids(self) -> list[int]:
        """What precedes a document: BOS if the tokenizer has one, else the EOS that separates documents."""
        for token_id in (self.tokenizer.bos_token_id, self.tokenizer.eos_token_id):
            if token_id is not None:
                return [int(token_id)]
        return []

    @torch.no_grad()
    def _logits(self, batch: torch.Tensor) -> torch.Tensor:
        return _logits_of(self.forward(batch.to(self.device))).float()

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped longest-first so that batch size x longest length stays within the token budget."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            width = lengths[current[0]] if current else lengths[index]
            if current and width * (len(current) + 1) > self.token_budget:
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def score_tokens(
        self, sequences: Sequence[Sequence[int]], score_from: Sequence[int]
    ) -> list[TokenScores]:
        """For each sequence s and start k >= 1: log P(s[i] | s[:i]) for i in [k, len(s))."""
        lengths = [len(s) for s in sequences]
        for i, (length, start) in enumerate(zip(lengths, score_from, strict=True)):
            if length > self.max_length:
                raise ValueError(f"sequence {i} has {length} tokens, over the model's {self.max_length}")
            if not 1 <= start <= length:
                raise ValueError(f"sequence {i}: score_from {start} outside [1, {length}]")
        results: list[TokenScores | None] = [None] * len(sequences)
        for batch in self._batches(lengths):
            width = max(lengths[i] for i in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            for row, index in enumerate(batch):
                ids[row, : lengths[index]] = torch.as_tensor(list(sequences[index]), dtype=torch.long)
            logits = self._logits(ids)
            for row, index in enumerate(batch):
                start, end = score_from[index], lengths[index]
                step_logits = logits[row, start - 1 : end - 1]
                targets = ids[row, start:end].to(step_logits.device)
                logprobs = torch.log_softmax(step_logits, dim=-1).gather(-1, targets[:, None])[:, 0]
                is_argmax = step_logits.argmax(dim=-1) == targets
                results[index] = TokenScores(logprobs.double().cpu().numpy(), is_argmax.cpu().numpy())
        return results  # type: ignore[return-value]

    def split_request(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Tokenize like lm-evaluation-harness: encode the whole string, the continuation is what follows
        the context's own encoding; a trailing space of the context moves to the continuation."""
        spaces = len(context) - len(context.rstrip(" "))
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        context_ids = self.start_ids + self.encode(context)
        whole = self.start_ids + self.encode(context + continuation)
        if whole[: len(context_ids)] == context_ids:
            return context_ids, whole[len(context_ids) :]
        return context_ids, self.encode(continuation)

    def score_continuations(self, requests: Sequence[tuple[str, str]]) -> list[ContinuationScore]:
        """log P(continuation | context) for each (context, continuation); long contexts keep their tail."""
        sequences, starts = [], []
        for context, continuation in requests:
            context_ids, continuation_ids = self.split_request(context, continuation)
            if not continuation_ids:
                raise ValueError(f"empty continuation after tokenization: {continuation!r}")
            sequence = (context_ids + continuation_ids)[-self.max_length :]
            sequences.append(sequence)
            starts.append(max(1, len(sequence) - len(continuation_ids)))
        scores = self.score_tokens(sequences, starts)
        return [ContinuationScore(s.total, len(s.logprobs), bool(s.is_argmax.all())) for s in scores]

    def sequence_logprob(self, texts: Sequence[str]) -> list[TokenScores]:
        """Log-probabilities of every token of each text after the document start token."""
        sequences = [(self.start_ids + self.encode(t))[: self.max_length] for t in texts]
        return self.score_tokens(sequences, [1] * len(sequences))

    @torch.no_grad()
    def greedy(self, ids: Sequence[int], max_new_tokens: int) -> list[int]:
        """Greedy continuation by full re-forward per token: backend-agnostic, fine for short answers."""
        generated: list[int] = []
        sequence = list(ids)
        eos = self.tokenizer.eos_token_id
        for _ in range(max_new_tokens):
            window = torch.as_tensor([sequence[-self.max_length :]], dtype=torch.long)
            next_id = int(self._logits(window)[0, -1].argmax())
            if eos is not None and next_id == eos:
                break
            generated.append(next_id)
            sequence.append(next_id)
        return generated


def torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_hf(path: str | Path, device: str = "auto", dtype: str = "float32") -> Scorer:
    """A Hugging Face causal-LM directory (model + tokenizer), strictly offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not is_hf_dir(path):
        raise FileNotFoundError(f"{path}: not a Hugging Face model directory (needs config.json and weights)")
    torch_device = pick_device(device)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype), local_files_only=True)
    place(model, torch_device, torch_dtype(dtype))
    max_length = int(getattr(model.config, "max_position_embeddings", 2048))

    def forward(ids: torch.Tensor) -> Any:
        return model(input_ids=ids, use_cache=False)

    info = {"params": sum(p.numel() for p in model.parameters())}
    return Scorer(forward, tokenizer, max_length, torch_device, str(path), "hf", info, module=model)


def module_scorer(
    model: torch.nn.Module,
    tokenizer: Any,
    max_length: int,
    device: torch.device,
    name: str,
    backend: str,
    info: dict[str, Any] | None = None,
) -> Scorer:
    """A live module mapping ids [B, T] to logits (the trainer's Transformer, also inside training)."""
    return Scorer(model, tokenizer, max_length, device, name, backend, info or {}, module=model)


def load_scorer(path: str | Path, device: str = "auto", dtype: str = "float32") -> Scorer:
    """A Hugging Face directory or a trainer checkpoint (loaded by the trainer's own code)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if is_hf_dir(path):
        return load_hf(path, device, dtype)
    from eval.trainer_backend import load_trainer_checkpoint

    return load_trainer_checkpoint(path, device, dtype)
