"""Safe vocabulary extension: new domain words that leave every other text's tokens untouched.

New words become *added tokens* (matched in the raw text before pre-tokenization), not new BPE
merges. A merge would change how every text containing its pair is split; an added token only
acts where its exact string occurs, so the ids of any text not containing one of the new words
are the same as before, and a model trained on the old tokenizer still reads them unchanged.
New ids are appended after the vocabulary, inside the embedding headroom left at training (for a
tokenizer trained elsewhere: the rows its model directory's config.json has beyond the vocabulary,
else the default headroom; ``read_meta``). The output's sidecar records the special tokens decided
for the input (``special_roles``), which the Hugging Face files beside the input told, so ``pack``
finds the same ones for the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken

from dataengine.io.paths import read_bytes, write_bytes_atomic
from dataengine.pack.specials import special_tokens_for
from dataengine.pack.tokenizer import load_tokenizer, read_meta, tokenizer_file, write_meta


def read_word_list(path: str | Path) -> list[str]:
    """One word per line; blank lines and lines starting with '#' are skipped; order kept, duplicates dropped."""
    words: list[str] = []
    for line_no, line in enumerate(read_bytes(path).decode("utf-8").splitlines(), 1):
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        if any(ch.isspace() for ch in word):
            raise ValueError(f"{path} line {line_no}: {word!r} contains whitespace; add one word per line")
        if word not in words:
            words.append(word)
    if not words:
        raise ValueError(f"{path}: no words to add")
    return words


def extend_tokenizer(tokenizer_path: str | Path, words: Sequence[str], output: str | Path) -> dict[str, Any]:
    """Write ``output`` = the tokenizer plus ``words`` as added tokens; returns what was added
    (word -> new id) and what was skipped (already one token, or already added)."""
    tokenizer = load_tokenizer(tokenizer_path)
    meta = read_meta(tokenizer_path)
    meta.setdefault("special_roles", special_tokens_for(tokenizer, tokenizer_file(tokenizer_path)))
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    skipped: dict[str, str] = {}
    new: list[str] = []
    for word in words:
        if word in vocab:
            skipped[word] = "already in the vocabulary"
        elif len(tokenizer.encode(word, add_special_tokens=False).ids) == 1:
            skipped[word] = "already a single token"
        else:
            new.append(word)
    room = meta["embedding_size"] - tokenizer.get_vocab_size()
    if len(new) > room:
        raise ValueError(
            f"{tokenizer_file(tokenizer_path)}: {len(new)} new tokens do not fit the embedding headroom: "
            f"vocabulary {tokenizer.get_vocab_size()}, embedding size {meta['embedding_size']} ({room} free)"
        )
    tokenizer.add_tokens(
        [AddedToken(w, single_word=False, lstrip=False, rstrip=False, normalized=False) for w in new]
    )
    added = {w: tokenizer.token_to_id(w) for w in new}
    if new:
        write_bytes_atomic(output, tokenizer.to_str(pretty=True).encode())
    else:
        write_bytes_atomic(output, tokenizer_file(tokenizer_path).read_bytes())
    meta = {**meta, "added_tokens": [*meta.get("added_tokens", []), *new]}
    write_meta(output, meta)
    return {"added": added, "skipped": skipped, "vocab_size": tokenizer.get_vocab_size()}
