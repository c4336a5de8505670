"""Keep rate and top reject reasons per language of real text through the whole chain, with the shipped
`configs/pipeline.yaml` (issue #13 point 4: per-language rule sets).

    .venv/bin/python benchmarks/language_keep_rates.py [--data ../shared/data] [--poems 1000] [--set KEY=VALUE ...]

Sources (all under the data root, see its README): UDHR documents (every language, cut into ~2,000-character
pieces at line breaks), Gutenberg books pg2000 (es) and pg24675 (nl), NLTK Genesis (de, fr, pt, fi, sv),
吾輩は猫である (ja), German/other web pages of trafilatura's evaluation set (HTML extracted with trafilatura,
labelled by their <html lang>), and classical Chinese poetry (chinese-poetry: Tang poems, Song ci, 论语 ...).
Books are cut into ~8,000-character documents at paragraph breaks.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

from dataengine.config import load_pipeline_config
from dataengine.processor import DocumentProcessor

ROOT = Path(__file__).resolve().parents[1]
UDHR = {"deu": "de", "fra": "fr", "spa": "es", "ita": "it", "por": "pt", "nld": "nl", "rus": "ru"}
UDHR |= {"jpn": "ja", "kor": "ko", "eng": "en", "cmn_hans": "zh", "cmn_hant": "zh"}


def chunks(text: str, size: int, sep: str = "\n\n") -> list[str]:
    """Pieces of about `size` characters cut at `sep`."""
    out, cur = [], ""
    for block in text.split(sep):
        if cur and len(cur) + len(block) > size:
            out.append(cur.strip())
            cur = ""
        cur += block + sep
    if cur.strip():
        out.append(cur.strip())
    return [c for c in out if len(c) > size // 4]


def gutenberg_body(text: str) -> str:
    start = re.search(r"\*\*\* ?START OF.*\n", text)
    end = re.search(r"\*\*\* ?END OF", text)
    return text[start.end() if start else 0 : end.start() if end else len(text)]


def sources(data: Path, n_poems: int) -> dict[str, list[tuple[str, str]]]:
    """(source, text) pairs per expected language."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with gzip.open(data / "langid" / "udhr2_docs.jsonl.gz", "rt") as f:
        for line in f:
            row = json.loads(line)
            code = row.get("lang") or row.get("id")
            lang = UDHR.get(code)
            if lang:
                out[lang] += [("udhr", c) for c in chunks(row["text"], 2000, "\n")]
    gut = data / "reference" / "gutenberg"
    for file, lang in (("pg2000.txt", "es"), ("pg24675.txt", "nl")):
        out[lang] += [("gutenberg", c) for c in chunks(gutenberg_body((gut / file).read_text()), 8000)][:60]
    for line in open(data / "reference" / "nltk" / "genesis.jsonl"):
        row = json.loads(line)
        name = row["id"].split("/")[1].removesuffix(".txt")
        lang = {"german": "de", "french": "fr", "portuguese": "pt", "finnish": "fi", "swedish": "sv"}.get(
            name
        )
        if lang:
            out[lang] += [("genesis", c) for c in chunks(row["text"], 8000, "\n")][:20]
    ja = (data / "reference" / "wagahaiwa_nekodearu.txt").read_text()
    out["ja"] += [("wagahaiwa", c) for c in chunks(ja, 8000, "\n")][:40]
    try:
        import trafilatura

        with gzip.open(data / "web" / "trafilatura_pages.jsonl.gz", "rt") as f:
            for line in f:
                row = json.loads(line)
                m = re.search(r"<html[^>]*\blang=[\"']?([a-zA-Z]{2})", row["html"][:5000])
                lang = m.group(1).lower() if m else None
                if lang in ("de", "fr", "es", "it", "pt", "nl", "ru", "pl"):
                    text = trafilatura.extract(row["html"]) or ""
                    if len(text) > 500:
                        out[lang].append(("web", text))
    except ImportError:
        pass
    with gzip.open(data / "zh" / "zh_classical_poetry.jsonl.gz", "rt") as f:
        poems = [json.loads(line) for line in f]
    random.Random(0).shuffle(poems)
    out["lzh"] += [(p["collection"], p["text"]) for p in poems[:n_poems]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--poems", type=int, default=1000)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    processor = DocumentProcessor(load_pipeline_config(ROOT / "configs" / "pipeline.yaml", args.set))
    for lang, docs in sorted(sources(args.data, args.poems).items()):
        rows = [{"id": f"{lang}-{i}", "source": src, "text": t} for i, (src, t) in enumerate(docs)]
        kept, rejected = processor.process(rows)
        by_source: dict[str, Counter] = defaultdict(Counter)
        for row in kept + rejected:
            by_source[row["source"]][row.get("reject") is None] += 1
        detected = Counter(r.get("lang") for r in kept + rejected).most_common(3)
        reasons = Counter(r["reject"] for r in rejected).most_common(4)
        gopher = Counter(r["reject"] for r in rejected if r["reject"].startswith("gopher:")).most_common(3)
        parts = ", ".join(f"{s} {c[True]}/{c[True] + c[False]}" for s, c in sorted(by_source.items()))
        print(f"{lang}: kept {len(kept)}/{len(rows)} = {len(kept) / len(rows):.2f} ({parts})")
        print(f"    detected {detected}; top reasons {reasons}; gopher {gopher}")


if __name__ == "__main__":
    main()
