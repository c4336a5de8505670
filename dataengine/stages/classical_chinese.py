"""Recognise classical Chinese (文言文, poetry, the classics: ISO 639-3 `lzh`), which lid.176 has no label for.

fastText calls classical poems `zh`, and often `ja` when written in simplified characters. Language ID
relabels a Han-script text (zh, ja, yue, wuu) as `lzh` when all of these hold:
- no kana, no Latin letters and no digits (modern text writes years and names with them);
- almost none of the modern function characters 的 们 这 吗 呢 么 哪 啊 她 它 个 (at most 1 in 200 Han
  characters; 是 了 那 are left out: classical poems use them too);
- and either classical particles 曰 兮 乎 矣 焉 哉 也 耶 欤 吾 汝 尔 make up at least 2% of the Han
  characters (the classics, 楚辞, prose), or the text is verse: at least 4 clauses, 80% of them of 3 to
  9 characters (shi poems of 4/5/7-character lines, most ci).
Measured (`benchmarks/language_keep_rates.py`, 5,000 works of chinese-poetry): 93% of 全唐诗, 89% of 宋词,
all of 诗经/楚辞/论语/四书五经 are recognised (元曲, written in the vernacular, mostly stays `zh`);
of modern text, 1 of 1,104 zh-Wikipedia paragraphs (CMRC) and 0.6-2% of the single news sentences of
SIGHAN 2005 (short clauses, no function characters) are taken for classical.
"""

from __future__ import annotations

import regex

HAN_LANGS = frozenset({"zh", "ja", "yue", "wuu"})
MODERN_CHARS = frozenset("的们們这這吗嗎呢么麼哪啊她它个個")
CLASSICAL_CHARS = frozenset("曰兮乎矣焉哉也耶歟欤吾汝爾尔")
MAX_MODERN_SHARE = 0.005
MIN_CLASSICAL_SHARE = 0.02
MIN_HAN = 8

_HAN = regex.compile(r"\p{Han}")
_NOT_CLASSICAL = regex.compile(r"[\p{Hiragana}\p{Katakana}\p{Hangul}A-Za-z0-9Ａ-Ｚａ-ｚ０-９]")
_CLAUSE_BREAK = regex.compile(r"[\p{P}\s]+")


def is_classical_chinese(text: str) -> bool:
    """Whether a Han-script text reads as classical Chinese (see the module docstring)."""
    if _NOT_CLASSICAL.search(text):
        return False
    han = _HAN.findall(text)
    if len(han) < MIN_HAN:
        return False
    if sum(c in MODERN_CHARS for c in han) > MAX_MODERN_SHARE * len(han):
        return False
    if sum(c in CLASSICAL_CHARS for c in han) >= MIN_CLASSICAL_SHARE * len(han):
        return True
    clauses = [n for n in (len(_HAN.findall(c)) for c in _CLAUSE_BREAK.split(text)) if n]
    return len(clauses) >= 4 and sum(3 <= n <= 9 for n in clauses) >= 0.8 * len(clauses)
