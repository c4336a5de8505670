"""Per-language rule overrides shared by the rule-carrying stages (gopher, gopher_rep, c4, fineweb).

A stage config has two rule variants, `default` (spaced scripts) and `cjk` (character units), and
`by_lang: {L: {rule: value}}`: a document whose detected language is L is judged by the variant it
would otherwise get (`cjk` when L is a CJK language) with the rules given in `by_lang[L]` replaced.
Every override is checked against the variant's model when the config is read, so an unknown rule
name or a bad value is a config error, not a surprise in the middle of a run.

A stage config may ship built-in overrides (classical Chinese, `lzh`, is judged as poetry); what a
user writes under `by_lang.L` is merged over them rule by rule.

YAML: `stages.<stage>.by_lang.<lang>.<rule>: value`; command line: `--set stages.gopher.by_lang.de.min_stop_words=3`.

`by_category: {C: {threshold: value}}` then replaces thresholds for documents of category C (from the
category stage, which runs before these stages), over whatever rules their language gets. Only a
rules model's `THRESHOLDS` may be set there: the signals are measured with the language's rules, and a
category's own thresholds judge them (`dataengine decide` can change them without recomputing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, Field, field_validator, model_validator

from dataengine.stages.document import CJK_LANGS

if TYPE_CHECKING:
    from dataengine.stages.base import Facts
    from dataengine.stages.document import Document

Rules = TypeVar("Rules", bound=BaseModel)

BY_LANG_DESCRIPTION = (
    "per-language overrides {lang: {rule: value}} over the variant the language gets (default, or cjk for "
    "zh/ja/ko/yue/wuu/lzh); merged rule by rule over the built-in ones shown here"
)


class ByLangRules(BaseModel):
    """Mixin of a stage config with `default` / `cjk` rule variants and `by_lang` overrides.

    Subclasses declare `default`, `cjk`, `by_lang: dict[str, dict[str, Any]]` and may set
    `BUILTIN_BY_LANG` (their field default, merged under whatever the user gives)."""

    BUILTIN_BY_LANG: ClassVar[dict[str, dict[str, Any]]] = {}

    by_category: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per-category thresholds {category: {rule: value}} over the rules of the document's "
        "language (thresholds only: the signals do not depend on them)",
    )

    @field_validator("by_lang", mode="before", check_fields=False)
    @classmethod
    def _merge_builtin(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        merged = {lang: dict(rules) for lang, rules in cls.BUILTIN_BY_LANG.items()}
        for lang, rules in value.items():
            if rules is None:  # `by_lang.L: null` drops the built-in overrides of L
                merged.pop(lang, None)
                continue
            if not isinstance(rules, dict):
                raise ValueError(f"by_lang.{lang} must map rule names to values, got {rules!r}")
            merged.setdefault(lang, {}).update(rules)
        return merged

    @field_validator("cjk", mode="before", check_fields=False)
    @classmethod
    def _over_cjk_defaults(cls, value: Any) -> Any:
        """A partial `cjk:` (`--set stages.c4.cjk.min_sentences=5`) changes those rules of the CJK
        variant; without this, the rules it leaves out would fall back to the spaced-script defaults."""
        if not isinstance(value, dict):
            return value
        return {**cls.model_fields["cjk"].default_factory().model_dump(), **value}

    @model_validator(mode="after")
    def _check_by_lang(self):
        by_lang = self.resolve_by_lang()  # raises on an unknown rule or a bad value
        thresholds = type(self.default).THRESHOLDS
        for category, overrides in self.by_category.items():
            other = sorted(set(overrides) - thresholds)
            if other:
                raise ValueError(
                    f"by_category.{category}: {', '.join(other)} cannot differ by category (the signals are "
                    f"measured with the language's rules); thresholds that can: {', '.join(sorted(thresholds))}"
                )
            for name, rules in {"default": self.default, "cjk": self.cjk, **by_lang}.items():
                try:
                    type(rules).model_validate({**rules.model_dump(), **overrides})
                except ValueError as exc:
                    raise ValueError(f"by_category.{category} (over the {name} rules): {exc}") from exc
        return self

    def variant(self, lang: str | None, is_cjk: bool) -> Any:
        """The rules of a language without overrides: `cjk` for CJK languages, else `default`."""
        return self.cjk if (lang in CJK_LANGS if lang is not None else is_cjk) else self.default

    def resolve_by_lang(self) -> dict[str, Any]:
        """Full rules of every language in `by_lang`: its variant with the overrides applied."""
        resolved: dict[str, Any] = {}
        for lang, overrides in self.by_lang.items():
            base = self.variant(lang, lang in CJK_LANGS)
            known = type(base).model_fields
            unknown = sorted(set(overrides) - set(known))
            if unknown:
                raise ValueError(
                    f"by_lang.{lang}: unknown rule(s) {', '.join(unknown)}; known: {', '.join(known)}"
                )
            try:
                resolved[lang] = type(base).model_validate({**base.model_dump(), **overrides})
            except ValueError as exc:
                raise ValueError(f"by_lang.{lang}: {exc}") from exc
        return resolved


def by_lang_field(builtin: dict[str, dict[str, Any]] | None = None) -> Any:
    """The `by_lang` field of a stage config, its default the built-in overrides."""
    builtin = builtin or {}
    return Field(
        default_factory=lambda: {lang: dict(rules) for lang, rules in builtin.items()},
        description=BY_LANG_DESCRIPTION,
    )


class RulesByLang(Generic[Rules]):
    """A stage's lookup: the rules for a document, resolved once when the stage is built."""

    def __init__(self, cfg: ByLangRules):
        self.cfg = cfg
        self.by_lang: dict[str, Rules] = cfg.resolve_by_lang()
        self._deciding: dict[tuple[str, str | None], Rules] = {}

    def key(self, doc: Document | Facts) -> str:
        """The name of the rule set that measures `doc`: its language if overridden, else default/cjk."""
        if doc.lang in self.by_lang:
            return doc.lang
        return "cjk" if doc.is_cjk else "default"

    def deciding(self, facts: Facts) -> Rules:
        """The rules that judge a document: its language's, with its category's thresholds over them."""
        key = (self.key(facts), facts.category if facts.category in self.cfg.by_category else None)
        rules = self._deciding.get(key)
        if rules is None:
            rules = self.named(key[0])
            if key[1] is not None:
                rules = type(rules).model_validate({**rules.model_dump(), **self.cfg.by_category[key[1]]})
            self._deciding[key] = rules
        return rules

    def named(self, key: str) -> Rules:
        if key == "default":
            return self.cfg.default
        if key == "cjk":
            return self.cfg.cjk
        return self.by_lang[key]

    def __call__(self, doc: Document | Facts) -> Rules:
        return self.named(self.key(doc))

    def all(self) -> dict[str, Rules]:
        """Every rule set by name (default, cjk, then each overridden language)."""
        return {"default": self.cfg.default, "cjk": self.cfg.cjk, **self.by_lang}
