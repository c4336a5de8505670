"""PII masking: replace e-mail addresses, IP addresses, phone numbers, Chinese resident ID numbers and
credit-card numbers with typed placeholders, and count them.

Each kind is a candidate regex plus a validator, so only well-formed values are
masked: IPs must parse, ID numbers need the ISO 7064 MOD 11-2 check character
and a real birth date, card numbers need a known issuer prefix, a usual grouping
and the Luhn checksum. Cheap pre-checks (an '@', enough digits, a '::') skip the
regexes on text that cannot hold the kind, which is most text.

Kinds run in a fixed order: long digit strings (ID, card) before IP addresses and
phone numbers, so a phone pattern never eats part of an ID or card number.

Known ambiguities, decided here:
- A dotted quad of valid octets may be a four-part version or section number.
  Quads of single digits only ("1.2.3.4", a dental formula "3.1.4.2", also
  public resolvers like 8.8.8.8) are taken as such and kept, and so is a quad
  right after a version word, "v" or a pin ("v1.2.3.4", "version 10.0.0.1",
  "==10.4.0.35"); any other
  valid quad is masked: privacy wins the tie. Octets with leading zeros
  ("01.02.03.04") are not addresses. Loopback, unspecified, multicast and
  reserved addresses (127.0.0.1, 0.0.0.0, 224.0.0.1, ::1) name no host and are
  kept; private-range addresses are masked.
- IPv6 candidates must parse, contain a decimal digit and at least 6 hex digits,
  so C++ scopes ("A::B") and Python slices ("a[1::2]") are left alone.
- Digit runs that continue a decimal number ("4.14421607499") are not matched.
- Phone numbers without a country code must have a North-American grouping
  ("(212) 555-0143", "212-555-0143", "212.555.0143"), a Chinese mobile shape
  (1[3-9] + 9 digits) or a Chinese landline area code with a dash
  ("010-12345678"); a bare run of digits is not a phone number. With a "+"
  country code any grouping of 8 to 15 digits (E.164) counts. An 11-digit
  Chinese mobile shape without +86 is only taken as a phone number in a
  document with CJK characters: in other text such runs are mostly sizes and
  ids ("--max-size 17179869184"). Digits right after "/" or "_" (URL paths,
  identifiers) are not phone numbers.
- Only ASCII digits are considered.
- ID birth dates are checked for existence and a year from 1900 to 2099, not
  against today, so that the output does not depend on the day of the run.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dataengine.stages.base import Facts, Stage
from dataengine.stages.document import Document

KINDS = ("email", "cn_id", "credit_card", "ip_address", "phone")
PLACEHOLDER_NAMES = {
    "email": "EMAIL",
    "cn_id": "CN_ID",
    "credit_card": "CREDIT_CARD",
    "ip_address": "IP_ADDRESS",
    "phone": "PHONE",
}


class PiiConfig(BaseModel):
    """Which kinds of PII to mask, the placeholder, and an optional cap on PII per document."""

    model_config = ConfigDict(extra="forbid")

    email: bool = True
    ip_address: bool = True
    phone: bool = True
    cn_id: bool = True
    credit_card: bool = True
    placeholder: str = Field(
        "<{kind}>", description="format string; {kind} is EMAIL, IP_ADDRESS, PHONE, CN_ID or CREDIT_CARD"
    )
    max_pii: int | None = Field(
        None, ge=0, description="reject (rule too_many) above this many masked values"
    )

    @field_validator("placeholder")
    @classmethod
    def _formats_with_kind_only(cls, value: str) -> str:
        try:
            value.format(kind="EMAIL")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"placeholder must be a format string whose only field is {{kind}}: {exc!r}"
            ) from exc
        return value


# --- validators -----------------------------------------------------------------------------------

_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"


def is_valid_cn_id(number: str) -> bool:
    """18-character resident ID: real birth date (1900-2099) and the ISO 7064 MOD 11-2 check character."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    try:
        birth = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if not 1900 <= birth.year <= 2099:
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _CN_ID_WEIGHTS, strict=True))
    return _CN_ID_CHECK[total % 11] == number[17].upper()


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string (the last digit is the check digit)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _issuer_lengths(digits: str) -> tuple[int, ...]:
    """Card lengths allowed for the issuer prefix (IIN) of `digits`; empty when no known issuer matches."""
    p2, p3, p4 = int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":
        return (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return (16,)  # Mastercard
    if p2 in (34, 37):
        return (15,)  # American Express
    if p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or p2 == 62:
        return (16, 17, 18, 19)  # Discover, UnionPay
    if 3528 <= p4 <= 3589:
        return (16, 17, 18, 19)  # JCB
    if 300 <= p3 <= 305 or p2 in (36, 38, 39):
        return (14, 15, 16, 17, 18, 19)  # Diners Club
    return ()


_CARD_GROUPINGS = {(4, 6, 5), (4, 6, 4)}  # Amex, Diners; otherwise groups of four


def is_valid_card(candidate: str) -> bool:
    """13-19 digits with a known issuer prefix, a usual grouping (one separator kind) and Luhn."""
    separators = set(re.sub(r"\d", "", candidate))
    if len(separators) > 1:
        return False
    digits = re.sub(r"\D", "", candidate)
    if len(digits) not in _issuer_lengths(digits):
        return False
    if separators:
        groups = tuple(map(len, re.split(r"[ -]", candidate)))
        fours = all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4
        if not (fours or groups in _CARD_GROUPINGS):
            return False
    return luhn_ok(digits)


_VERSION_BEFORE = re.compile(
    r"(?:\b(?:version|ver|release|build|rev)\.?\s*|\bv\.?\s?|[=~<>]=\s*)$", re.IGNORECASE
)
_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def _names_a_host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, unspecified, multicast and reserved addresses identify no host, so no person."""
    return not (address.is_loopback or address.is_unspecified or address.is_multicast or address.is_reserved)


def is_ipv4(match: re.Match[str]) -> bool:
    """Octets are checked by the regex; rules out version-like quads and addresses of no host."""
    quad = match.group()
    if all(len(octet) == 1 for octet in quad.split(".")):
        return False
    before = match.string[max(0, match.start() - 12) : match.start()]
    if _VERSION_BEFORE.search(before):
        return False
    return _names_a_host(ipaddress.IPv4Address(quad))


def is_ipv6(match: re.Match[str]) -> bool:
    """Parses as IPv6, has a decimal digit and at least 6 hex digits (not "A::B", "a[1::2]", "::1")."""
    candidate = match.group()
    if not any(c.isdigit() for c in candidate) or sum(c not in ":." for c in candidate) < 6:
        return False
    try:
        return _names_a_host(ipaddress.IPv6Address(candidate))
    except ValueError:
        return False


def is_phone(match: re.Match[str]) -> bool:
    """International numbers need 8-15 digits (E.164); a bare 1[3-9]+9 digits needs Chinese text around it."""
    if match.group("intl") is not None:
        return 8 <= sum(c.isdigit() for c in match.group()) <= 15
    if match.group("cn_mobile") is not None and match.group("cn_prefix") is None:
        return _CJK_CHAR.search(match.string) is not None
    return True


# --- detectors ------------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"

# No look-behind: the leftmost match already starts at the first character of the local part.
_EMAIL = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)
_CN_ID = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9]\.)[1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    r"[0-9]{3}[0-9Xx](?![0-9A-Za-z])"
)
_CARD = re.compile(r"(?<![0-9\-])(?<![0-9]\.)[0-9](?:[ \-]?[0-9]){12,18}(?![0-9]|[\-.][0-9])")
_IPV4 = re.compile(rf"(?<![0-9.])(?:{_OCTET}\.){{3}}{_OCTET}(?![0-9]|\.[0-9])")
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?![0-9A-Za-z:])"
)
_PHONE = re.compile(
    r"(?<![0-9+/_])(?<![0-9]\.)(?:"
    # Chinese mobile, optional +86 / 0086 prefix, optional 3-4-4 grouping
    r"(?P<cn_mobile>(?P<cn_prefix>\(?(?:\+|00)86\)?[ \-]?)?1[3-9][0-9](?:[0-9]{8}|[ \-][0-9]{4}[ \-][0-9]{4}))"
    # Chinese landline: area code with a dash
    r"|0[1-9][0-9]{1,2}-[2-9][0-9]{6,7}"
    # North America: (NPA) NXX-XXXX, NPA-NXX-XXXX, NPA.NXX.XXXX, optional leading 1-
    r"|(?:1[ \-.])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[\-.])[2-9][0-9]{2}[\-.][0-9]{4}"
    # international: + country code, then groups of digits
    r"|(?P<intl>\+[1-9][0-9]{0,2}(?:[ \-.]?(?:\([0-9]{1,4}\)|[0-9]{1,4})){2,6})"
    r")(?![0-9]|\.[0-9])"
)


# Fast necessary conditions for the detectors above. Those start with a look-behind, which stops the
# regex engine from skipping ahead to a possible first character; these start with a character
# class, so they scan text several times faster and let most documents skip the full patterns.
_CN_ID_HINT = re.compile(r"[0-9]{17}")
_CARD_HINT = re.compile(r"[0-9](?:[ \-]?[0-9]){12}")
_IPV4_HINT = re.compile(r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")
_IPV6_FULL_HINT = re.compile(r"[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
# every phone form without a "+" has ten digits or more (area code and number)
_PHONE_HINT = re.compile(r"[0-9](?:[ ().\-]{0,2}[0-9]){9}")
_INTL_PHONE_HINT = re.compile(r"\+[1-9]")


@dataclass(frozen=True)
class _Detector:
    kind: str
    pattern: re.Pattern[str]
    is_valid: Callable[[re.Match[str]], bool]
    may_occur: Callable[[str, int], bool]  # cheap pre-check on (text, number of ASCII digits)


_DETECTORS = (
    _Detector("email", _EMAIL, lambda m: True, lambda text, digits: "@" in text),
    _Detector(
        "cn_id",
        _CN_ID,
        lambda m: is_valid_cn_id(m.group()),
        lambda text, digits: digits >= 17 and _CN_ID_HINT.search(text) is not None,
    ),
    _Detector(
        "credit_card",
        _CARD,
        lambda m: is_valid_card(m.group()),
        lambda text, digits: digits >= 13 and _CARD_HINT.search(text) is not None,
    ),
    _Detector(
        "ip_address",
        _IPV6,
        is_ipv6,
        lambda text, digits: "::" in text or _IPV6_FULL_HINT.search(text) is not None,
    ),
    _Detector(
        "ip_address",
        _IPV4,
        is_ipv4,
        lambda text, digits: digits >= 4 and _IPV4_HINT.search(text) is not None,
    ),
    _Detector(
        "phone",
        _PHONE,
        is_phone,
        lambda text, digits: (
            digits >= 8
            and (
                _PHONE_HINT.search(text) is not None
                or ("+" in text and _INTL_PHONE_HINT.search(text) is not None)
            )
        ),
    ),
)


def count_ascii_digits(text: str) -> int:
    return sum(map(text.count, "0123456789"))


class PiiMasker(Stage):
    """Masks PII in place (signals `<kind>` = values masked); rejects only with rule "too_many" when asked."""

    name = "pii"
    config_class = PiiConfig
    decision_keys = frozenset({"max_pii"})

    def __init__(self, cfg: PiiConfig | None = None):
        super().__init__()
        self.cfg = cfg or PiiConfig()
        enabled = {kind for kind in KINDS if getattr(self.cfg, kind)}
        self.kinds = [kind for kind in KINDS if kind in enabled]
        self.detectors = [d for d in _DETECTORS if d.kind in enabled]
        self.placeholders = {k: self.cfg.placeholder.format(kind=PLACEHOLDER_NAMES[k]) for k in self.kinds}

    def mask(self, text: str) -> tuple[str, dict[str, int]]:
        """The masked text and the number of values masked per enabled kind."""
        counts = dict.fromkeys(self.kinds, 0)
        digits = count_ascii_digits(text)
        for det in self.detectors:
            if not det.may_occur(text, digits):
                continue
            placeholder = self.placeholders[det.kind]
            hits = 0

            def replace(m: re.Match[str], det: _Detector = det, placeholder: str = placeholder) -> str:
                nonlocal hits
                if det.is_valid(m):
                    hits += 1
                    return placeholder
                return m.group()

            new_text = det.pattern.sub(replace, text)
            if hits:
                counts[det.kind] += hits
                text = new_text
                digits = count_ascii_digits(text)
        return text, counts

    def process(self, doc: Document) -> str | None:
        text, counts = self.mask(doc.text)
        for kind, n in counts.items():
            self.signal(doc, kind, n)
        if text != doc.text:
            doc.set_text(text)
        return self.decide(Facts(doc))

    def decide(self, facts: Facts) -> str | None:
        if self.cfg.max_pii is None:
            return None
        masked = sum(facts.signals[f"pii.{kind}"] for kind in self.kinds)
        return "too_many" if masked > self.cfg.max_pii else None
