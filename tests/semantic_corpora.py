"""Real en + zh text for the semantic dedup tests and benchmark, and the edits that make near-duplicates.

* Chinese: zh-Wikipedia paragraphs of CMRC 2018 (distinct texts).
* English: WikiText-2 validation paragraphs (one per line in the file, detokenized; at least 300 chars).
* ``zh_edit``: two adjacent sentences swapped, then the full-width punctuation written half-width
  (，。：；（）“”、 -> , . : ; ( ) " " ,), as text copied between sites often is.
* ``en_edit``: two adjacent sentences swapped and four light word edits (the -> this, and -> &,
  was -> had been, in -> within; the first occurrence of each).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from dataengine.pack.sample_corpus import _WIKITEXT_DETOK

_HALF_WIDTH = str.maketrans(
    {"，": ",", "。": ". ", "：": ":", "；": ";", "（": "(", "）": ")", "“": '"', "”": '"', "、": ","}
)
_EN_EDITS = ((" the ", " this "), (" and ", " & "), (" was ", " had been "), (" in ", " within "))


def zh_paragraphs(data: Path) -> list[str]:
    """The distinct CMRC 2018 zh-Wikipedia paragraphs, in file order."""
    with open(data / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as fh:
        return list(dict.fromkeys(json.loads(line)["text"] for line in fh if line.strip()))


def wikitext_paragraphs(data: Path, min_chars: int = 300) -> list[str]:
    """The distinct WikiText-2 validation paragraphs of at least ``min_chars`` characters, detokenized."""
    out = []
    with open(data / "reference" / "wikitext-2_valid.txt", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("="):
                continue
            for tok, repl in _WIKITEXT_DETOK:
                line = line.replace(tok, repl)
            if len(line) >= min_chars:
                out.append(line)
    return list(dict.fromkeys(out))


def _swap_two(parts: list[str], rng: random.Random) -> list[str]:
    if len(parts) >= 3:
        i = rng.randrange(len(parts) - 1)
        parts[i], parts[i + 1] = parts[i + 1], parts[i]
    return parts


def zh_edit(text: str, rng: random.Random) -> str:
    sentences = re.findall(r"[^。！？]+[。！？]?", text)
    return "".join(_swap_two(sentences, rng)).translate(_HALF_WIDTH).strip()


def en_edit(text: str, rng: random.Random) -> str:
    out = " ".join(_swap_two(re.split(r"(?<=[.!?]) ", text), rng))
    for old, new in _EN_EDITS:
        out = out.replace(old, new, 1)
    return out
