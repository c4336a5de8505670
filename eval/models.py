"""A causal LM seen only through token log-probabilities and greedy decoding.

Every eval part talks to `Scorer`, so the same code measures a Hugging Face directory (a base model before
continued pretraining) and the project's own trainer checkpoints. A backend only supplies a function
mapping input ids [B, T] to logits [B, T, V] and a tokenizer; batches are right-padded, which needs no
attention mask because a causal model never looks at later (padding) positions.

Requests are tokenized as lm-evaluation-harness 0.4's `hf` model does (0.4.13, `add_bos_token` unset), so
that the numbers agree with it (tests/test_eval_lm_eval_agreement.py runs the harness itself): a context is
encoded with the tokenizer's own special tokens (a Llama-style tokenizer adds BOS, GPT-2/Qwen2-style ones and
this project's add nothing), its trailing whitespace moves to the continuation, the continuation is what the
whole string's encoding adds after the context's, and a document's first token is predicted after BOS (EOS
without one). `context_prefix` picks another encoding: `none` (no special tokens) or `bos_or_eos` (BOS, else
EOS, before every context: this project's behaviour before issue 18).
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
CONTEXT_PREFIXES = ("tokenizer", "none", "bos_or_eos")


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
    context_prefix: str = "tokenizer"  # tokenizer | none | bos_or_eos (EvalConfig.context_prefix)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    @property
    def start_ids(self) -> list[int]:
        """What precedes a document: BOS if the tokenizer has one, else the EOS that separates documents
        (the harness's `prefix_token_id`, from which a document's first token is predicted)."""
        for token_id in (self.tokenizer.bos_token_id, self.tokenizer.eos_token_id):
            if token_id is not None:
                return [int(token_id)]
        return []

    def encode_request(self, text: str) -> list[int]:
        """A request's text as the harness's `HFLM.tok_encode` encodes it under `context_prefix: tokenizer`:
        with the tokenizer's own special tokens, unless the text already starts with the start token's
        string; plain (no special tokens) under `none` and `bos_or_eos`."""
        if self.context_prefix not in CONTEXT_PREFIXES:
            raise ValueError(f"context_prefix must be one of {CONTEXT_PREFIXES}, got {self.context_prefix!r}")
        if self.context_prefix != "tokenizer":
            return self.encode(text)
        if self.start_ids and text.startswith(self.decode(self.start_ids)):
            return self.encode(text)
        return list(self.tokenizer.encode(text))

    def document_ids(self, text: str) -> list[int]:
        """A document for rolling log-likelihood: the start token, then the text as requests are encoded
        (the harness: `[prefix_token_id] + tok_encode(text)`)."""
        return self.start_ids + self.encode_request(text)

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
        """For each sequence s and start k >= 1: log P(s[i] | s[:i]) for i in [k, len(s)).

        The model reads s[:-1] (the last token is only a target), so a sequence may hold max_length + 1
        tokens, as the harness's requests do."""
        lengths = [len(s) for s in sequences]
        for i, (length, start) in enumerate(zip(lengths, score_from, strict=True)):
            if length - 1 > self.max_length:
                raise ValueError(
                    f"sequence {i} feeds {length - 1} tokens to the model, over its {self.max_length}"
                )
            if not 1 <= start <= length:
                raise ValueError(f"sequence {i}: score_from {start} outside [1, {length}]")
        results: list[TokenScores | None] = [None] * len(sequences)
        for batch in self._batches([max(1, n - 1) for n in lengths]):
            width = max(lengths[i] for i in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            for row, index in enumerate(batch):
                ids[row, : lengths[index]] = torch.as_tensor(list(sequences[index]), dtype=torch.long)
            logits = self._logits(ids[:, : max(1, width - 1)])
            for row, index in enumerate(batch):
                start, end = score_from[index], lengths[index]
                step_logits = logits[row, start - 1 : end - 1]
                targets = ids[row, start:end].to(step_logits.device)
                logprobs = torch.log_softmax(step_logits, dim=-1).gather(-1, targets[:, None])[:, 0]
                is_argmax = step_logits.argmax(dim=-1) == targets
                results[index] = TokenScores(logprobs.double().cpu().numpy(), is_argmax.cpu().numpy())
        return results  # type: ignore[return-value]

    def split_request(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Tokenize like lm-evaluation-harness 0.4 (`TemplateLM.loglikelihood`, `_encode_pair`): trailing
        whitespace of the context moves to the continuation, the whole string is encoded and the continuation
        is what follows the context's own encoding. An empty context becomes the start token (BOS, else EOS),
        unless the continuation already starts with it."""
        if not context:
            continuation_ids = self.encode(continuation)
            if self.start_ids and continuation_ids[:1] != self.start_ids:
                return self.start_ids, continuation_ids
            return continuation_ids[:1], continuation_ids[1:]
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        context_ids = self.encode_request(context)
        whole = self.encode_request(context + continuation)
        prefix = self.start_ids if self.context_prefix == "bos_or_eos" else []
        return prefix + context_ids, whole[len(context_ids) :]

    def score_continuations(self, requests: Sequence[tuple[str, str]]) -> list[ContinuationScore]:
        """log P(continuation | context) for each (context, continuation); a request longer than the model's
        context keeps its last max_length + 1 tokens (the harness's left truncation)."""
        sequences, starts = [], []
        for context, continuation in requests:
            context_ids, continuation_ids = self.split_request(context, continuation)
            if not continuation_ids:
                raise ValueError(f"empty continuation after tokenization: {continuation!r}")
            sequence = (context_ids + continuation_ids)[-(self.max_length + 1) :]
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


HF_DEFAULT_MAX_LENGTH = 2048  # the harness's HFLM._DEFAULT_MAX_LENGTH
TOKENIZER_UNSET_LENGTH = 1000000000000000019884624838656  # transformers' "no model_max_length" value


def hf_max_length(config: Any, tokenizer: Any) -> int:
    """The model's trained sequence length, looked up as the harness's `HFLM.max_length` does: the config's
    n_positions, max_position_embeddings or n_ctx, else the tokenizer's model_max_length, else 2048."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        if getattr(config, attr, None) is not None:
            return int(getattr(config, attr))
    length = getattr(tokenizer, "model_max_length", None)
    if length is None or length == TOKENIZER_UNSET_LENGTH:
        return HF_DEFAULT_MAX_LENGTH
    return int(length)


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
    max_length = hf_max_length(model.config, tokenizer)

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
