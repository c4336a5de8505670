"""Which tokens end, pad and begin documents: this project's tokenizers and foreign ones (Qwen2, Llama-3).

``pack`` needs an end-of-document token (every document ends with it), a pad token (fills the end of a
split's last row; those positions lie in no span, so the loss never sees them) and records a
begin-of-document token when the tokenizer has one (pack inserts none). Each role is decided once, in
this order, so continued pretraining packs with the base model's own conventions:

1. the config's ``special_tokens`` mapping (a non-null value);
2. the tokenizer's sidecar ``.meta.json`` (``special_roles``, written by ``tokenizer extend``, whose
   output no longer sits beside its model directory's files);
3. ``tokenizer_config.json``, then ``special_tokens_map.json``, beside the tokenizer.json: what Hugging
   Face model directories ship and ``transformers`` obeys, so a key there decides, null included
   (Qwen2: ``bos_token: null``);
4. conventions, looked up among the added tokens only (a BPE merge that happens to spell ``<s>`` is
   ordinary text): this project's ``<|eos|>``/``<|pad|>``/``<|bos|>`` first, then Qwen2/GPT-2
   ``<|endoftext|>``, Llama-3 ``<|end_of_text|>``/``<|begin_of_text|>``, ``</s>``/``<s>``/``<pad>``
   (Llama-2, Mistral, T5) and Gemma's ``<eos>``/``<bos>``.

A pad left undecided falls back to the eos (Llama-3 has none); a bos may stay absent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
ROLES = ("eos", "pad", "bos")
CONVENTIONS: dict[str, tuple[str, ...]] = {
    "eos": (EOS, "<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"),
    "pad": (PAD, "<pad>", "<|padding|>"),
    "bos": (BOS, "<|begin_of_text|>", "<s>", "<bos>"),
}
HF_TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json")

# role -> (token or None, where it was named: for error messages)
Named = dict[str, tuple[str | None, str]]


def _token_text(value: Any) -> str | None:
    """A special token as Hugging Face files write it: a string, or an AddedToken dict with ``content``."""
    return value.get("content") if isinstance(value, dict) else value


def hf_named_tokens(folder: Path) -> Named:
    """The roles ``tokenizer_config.json`` (first) or ``special_tokens_map.json`` in ``folder`` name
    (``eos_token`` ...), null values included: a key present there decides its role."""
    named: Named = {}
    for name in HF_TOKENIZER_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not JSON ({err})") from err
        for role in ROLES:
            key = f"{role}_token"
            if key in data and role not in named:
                named[role] = (_token_text(data[key]), f"{path}: {key}")
    return named


def convention_token(tokenizer: Tokenizer, role: str) -> str | None:
    """The first conventional token of ``role`` among the tokenizer's added tokens, else None."""
    added = {token.content for token in tokenizer.get_added_tokens_decoder().values()}
    return next((name for name in CONVENTIONS[role] if name in added), None)


def special_tokens_for(
    tokenizer: Tokenizer,
    tokenizer_json: Path,
    mapping: Mapping[str, str | None] | None = None,
    recorded: Mapping[str, str | None] | None = None,
    recorded_in: str = "the tokenizer's .meta.json",
) -> dict[str, str | None]:
    """role -> token (None: the tokenizer has none), decided as the module docstring says: ``mapping``
    is the config's ``special_tokens``, ``recorded`` the sidecar's ``special_roles`` (file
    ``recorded_in``). A token named by any of them or by a Hugging Face file but absent from the
    vocabulary is refused, naming where it was named. The eos may be None here (``tokenizer extend``
    needs none): ``require_eos`` refuses that for packing."""
    named: Named = {
        role: (token, f"special_tokens.{role}") for role, token in (mapping or {}).items() if token
    }
    for role, token in (recorded or {}).items():
        named.setdefault(role, (token, f"{recorded_in}: special_roles.{role}"))
    for role, value in hf_named_tokens(tokenizer_json.parent).items():
        named.setdefault(role, value)
    tokens: dict[str, str | None] = {}
    for role in ROLES:
        token, where = named.get(role) or (convention_token(tokenizer, role), "")
        if where and token is not None and tokenizer.token_to_id(token) is None:
            raise ValueError(
                f"{where}: {token!r} is not in the vocabulary of {tokenizer_json} "
                f"(set special_tokens.{role} to a token it has)"
            )
        tokens[role] = token
    tokens["pad"] = tokens["pad"] or tokens["eos"]
    return tokens


def require_eos(tokens: Mapping[str, str | None], tokenizer_json: Path) -> None:
    """Packing ends every document with the eos: refuse a tokenizer whose eos could not be decided."""
    if tokens["eos"] is None:
        raise ValueError(
            f"{tokenizer_json}: no end-of-document token found (no eos_token in a "
            f"{' or '.join(HF_TOKENIZER_FILES)} beside it, and none of {', '.join(CONVENTIONS['eos'])} "
            "among its added tokens); set special_tokens.eos to the token that ends a document, "
            "e.g. --set 'special_tokens.eos=<|endoftext|>'"
        )


def special_ids(
    tokenizer: Tokenizer, tokens: Mapping[str, str | None] | None = None
) -> dict[str, int | None]:
    """role -> id of ``tokens`` (default: the conventional tokens among the added ones, pad falling back
    to eos; this project's tokenizers give pad 0, bos 1, eos 2)."""
    if tokens is None:
        tokens = {role: convention_token(tokenizer, role) for role in ROLES}
        tokens["pad"] = tokens["pad"] or tokens["eos"]
    return {role: None if token is None else tokenizer.token_to_id(token) for role, token in tokens.items()}
