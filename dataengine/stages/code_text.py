"""How code is shown to the code-vs-prose fastText model, and the shape a text must have to be code.

The model reads tokens; on its own it calls short or foreign-script prose code (one Chinese
sentence, a line of Hindi or Quechua: scripts and languages it never saw). The shape is read from
the lines themselves and is shared by training (scripts/train_code_detector.py) and inference:

* code is written in ASCII: most of its lines (weighted by length) start with an ASCII character
  that is not a digit (a keyword, an identifier, a bracket, a comment mark, a quote), even when
  its comments and strings are Chinese; prose in another script starts its lines with that script;
* code has code lines: a share of its lines carry a mark of program text (an import, a definition,
  an assignment, a call ending the line, a brace, a comment, a `key: value` config line, an indented
  list item) or its text is dense in the symbols prose rarely uses (`{}[]<>=;_\\|$``^~`).

A single line is code only if it is dense in those symbols (minified code) or is itself an
unmistakable program line (an import, a definition, an assignment, a `snake_case: value` line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import regex

_SYMBOL = regex.compile(r"[^\w\s]")
# `_SYMBOL` on ASCII text (regex's \w and \s there: letters, digits, _ and six spaces) in the stdlib
# engine, which is faster on the ASCII openings that are most documents.
_ASCII_SYMBOL = re.compile(r"[^A-Za-z0-9_\t\n\x0b\x0c\r ]")
MAX_CHARS = 4000
SHAPE_MAX_CHARS = 20_000

# Symbols of program text that prose rarely uses (parentheses, slashes, +, *, % and @ are common in prose).
_CODE_SYMBOLS = regex.compile(r"[{}\[\]<>=;_\\|$`^~]")
# Lines that are unmistakably program text, even alone.
_STRONG_LINE = regex.compile(
    r"""(?x)
    [{}]\s*$                                              # a block opens or closes
    | ^\s*[})\]]+[;,)]*\s*$                               # a line of closing brackets
    | [A-Za-z_]\w*\([^()]*\)\s*[;:{,]?\s*$                # a call or signature ends the line
    | [A-Za-z_]\w*\(\s*$                                  # a call continues on the next line
    | \w\s*(?:[-+*/|&]=|==|!=|->|=>|::|:=|<<|>>)\s*\S     # operators of code
    | ^\s*[A-Za-z_][\w.\[\]'"]*\s*=\s*\S                  # an assignment
    | ^\s*(?:from\s+[\w.]+\s+import\s|import\s+[\w.]+|\#include\s|using\s+[\w:]+;|package\s+[\w.]+)
    | ^\s*(?:def|class|return|fn|let|const|var|function|pub|use|struct|impl|if|elif|else|for|while|try
          |except|echo|export|namespace|template|static|void|public|private|async|await|with|raise
          |assert|yield|local|set|then|fi|do|done|case|esac)\b.*[:{(;=\[]\s*$   # a keyword opens a statement
    | ^\s*[a-z][\w.-]*[_.-][\w.-]*:\s*\S*\s*$             # snake_case: value (config)
    | ^\s*\[[\w.\-"]+\]\s*$                               # [section] (TOML, INI)
    """
)
# Lines that mark program text in the company of others (each also occurs in prose).
_WEAK_LINE = regex.compile(
    r"""(?x)
    ^\s*(?:\#|//|/\*|--\s|\*\s|\*/)                       # comments
    | ^\s*(?:"{3}|'{3})                                   # docstrings
    | ^\s*-?\s*[a-z_][\w.-]*:(?:\s|$)                     # key: value (YAML), lower-case keys
    | ^\s*-\s+\S+\s*$                                     # a one-token list item (YAML)
    | ^\s*@\w+                                            # decorators, annotations
    | ^.{0,60};\s*$ | [(){}=\[\]].*;\s*$                  # C-family statements
    | ^\s+[\w"'.]+,\s*$                                   # an indented item of a list
    """
)

# Thresholds of the shape, chosen on the project's data (benchmarks/code_detector.py prints the outcome).
MIN_ASCII_LINE_SHARE = 0.5
MIN_CODE_LINE_SHARE = 0.15
MIN_SYMBOL_DENSITY = 0.03
MIN_SYMBOL_DENSITY_ONE_LINE = 0.15


def code_features(text: str) -> str:
    """One line of space-separated tokens: symbols split out, newlines kept as a token."""
    head = text[:MAX_CHARS]
    spaced = (_ASCII_SYMBOL if head.isascii() else _SYMBOL).sub(r" \g<0> ", head)
    return " ".join(spaced.replace("\n", " __nl__ ").split())


@dataclass(frozen=True)
class CodeShape:
    """What the lines of a text say about it being program text."""

    lines: int
    ascii_line_share: float  # length-weighted share of lines starting with an ASCII non-digit character
    code_line_share: float  # share of lines marked as program text
    symbol_density: float  # code symbols per non-space character
    strong_line: bool  # some line is unmistakably program text

    @property
    def is_code_shaped(self) -> bool:
        if self.lines == 0 or self.ascii_line_share < MIN_ASCII_LINE_SHARE:
            return False
        if self.lines == 1:
            return self.strong_line or self.symbol_density >= MIN_SYMBOL_DENSITY_ONE_LINE
        return self.code_line_share >= MIN_CODE_LINE_SHARE or self.symbol_density >= MIN_SYMBOL_DENSITY


def code_shape(text: str) -> CodeShape:
    """The shape of the first SHAPE_MAX_CHARS characters of `text`."""
    lines = [line for line in text[:SHAPE_MAX_CHARS].split("\n") if line.strip()]
    if not lines:
        return CodeShape(0, 0.0, 0.0, 0.0, False)
    weight = ascii_weight = marked = 0
    strong_line = False
    for line in lines:
        n = len(line)
        weight += n
        first = line.lstrip()[0]
        if first.isascii() and not first.isdigit():
            ascii_weight += n
        if _STRONG_LINE.search(line):
            marked += 1
            strong_line = True
        elif _WEAK_LINE.search(line):
            marked += 1
    non_space = sum(len(line) - line.count(" ") - line.count("\t") for line in lines)
    symbols = sum(len(_CODE_SYMBOLS.findall(line)) for line in lines)
    return CodeShape(
        lines=len(lines),
        ascii_line_share=ascii_weight / weight,
        code_line_share=marked / len(lines),
        symbol_density=symbols / max(1, non_space),
        strong_line=strong_line,
    )
