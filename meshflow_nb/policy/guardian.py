"""The guardian: screens what goes into and comes out of every node.

Three categories of trouble are looked for in every string of a node's input and output
(walking nested dicts, lists and tuples):

* **prompt_injection** - text that tries to override the agent's instructions
  ("ignore all previous instructions", "you are now DAN", "</system>", ...);
* **secret** - credentials that must never travel further (API keys, tokens, private keys,
  high-entropy ``password=...`` assignments);
* **pii** - personal data (email addresses, phone numbers, payment cards that pass the
  Luhn check, US social security numbers, UK National Insurance numbers).

A `Guardian` reports each hit as a `Finding` that names the category, the kind and the
place - never the matched text, so findings can be logged, emitted as events and stored
in the ledger without leaking what they found. Depending on its `Action` the guardian
only flags, redacts the spans (``[REDACTED:email]``) or blocks the value.

Everything here is pure and standard-library only. Every pattern is compiled at import
and written to run in linear time (no nested or overlapping quantifiers), so hostile
input cannot make screening hang. docs/guardian.md explains the rules and their limits.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "ENTROPY_THRESHOLD",
    "KINDS",
    "REDACTION",
    "Action",
    "Category",
    "Finding",
    "Guardian",
    "Screening",
    "luhn_valid",
    "shannon_entropy",
]

REDACTION = "[REDACTED:{kind}]"
"""What replaces a finding's span under `Action.REDACT`, e.g. ``[REDACTED:email]``."""

ENTROPY_THRESHOLD = 3.0
"""Least Shannon entropy (bits per character) of a ``password=...`` value to count as a secret."""

_MIN_CREDENTIAL_LENGTH = 8
_PLACEHOLDER_WORDS = ("example", "sample", "placeholder", "changeme", "dummy", "redacted",
                      "your", "xxxx")
_FILE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico",
                              "tif", "tiff", "pdf"})
_NINO_UNUSED_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_CARD_FIRST_DIGITS = frozenset("23456")
_MIN_PRINTABLE_SHARE = 0.95
_CONTAINERS = (dict, list, tuple)


class Category(StrEnum):
    """What kind of trouble a finding is."""

    PROMPT_INJECTION = "prompt_injection"
    SECRET = "secret"
    PII = "pii"



class Action(StrEnum):
    """What the guardian does with a value that has findings."""

    FLAG = "flag"
    """Report the findings; pass the value on unchanged."""
    REDACT = "redact"
    """Report the findings; replace each span with ``[REDACTED:kind]``."""
    BLOCK = "block"
    """Report the findings; mark the value blocked so the run stops it."""



@dataclass(frozen=True)
class Finding:
    """One hit: what was found and where, but never the matched text itself.

    ``where`` is the screened value's place (``"input"``, ``"output"``) plus the path to
    the string inside it (``"output.sections[2]"``); ``start``/``end`` is the span within
    that string, so the text can be located by whoever holds the value, and only by them.
    """

    category: Category
    kind: str
    where: str
    start: int
    end: int

    def describe(self) -> str:
        """One line for people, e.g. ``secret (anthropic_api_key) in output``."""
        return f"{self.category.value} ({self.kind}) in {self.where}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for events and the ledger (no matched text)."""
        return {"category": self.category.value, "kind": self.kind, "where": self.where,
                "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Screening:
    """The result of screening one value."""

    findings: tuple[Finding, ...]
    value: Any
    """The screened value; redacted (same structure) when the action is REDACT."""
    blocked: bool
    """True when the action is BLOCK and there is at least one finding."""

    @property
    def clean(self) -> bool:
        """True when nothing was found."""
        return not self.findings


# --------------------------------------------------------------------------- validators


def shannon_entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character (0.0 for empty text).

    Random keys score high (about 4 to 6 bits); words and placeholders score low, which
    is how ``password=example`` is told apart from ``password=q7Fz9LmP2vX4tR8w``.
    """
    if not text:
        return 0.0
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in Counter(text).values())


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum that every payment card carries."""
    if not digits.isdecimal():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _character_classes(text: str) -> int:
    """How many of lower case, upper case and digits ``text`` mixes."""
    return sum((any(c.islower() for c in text), any(c.isupper() for c in text),
                any(c.isdigit() for c in text)))


def _looks_random(text: str) -> bool:
    """Mixes at least two of lower/upper/digits, as generated keys do and words do not."""
    return _character_classes(text) >= 2


def _looks_like_key(match: re.Match[str]) -> bool:
    """A key body mixes lower case, upper case and digits ("sk-learn-..." prose does not)."""
    return _character_classes(match.group("body")) == 3


def _looks_random_match(match: re.Match[str]) -> bool:
    return _looks_random(match.group())


def _has_digit(match: re.Match[str]) -> bool:
    return any(c.isdigit() for c in match.group())


_VALUE_TERMINATORS = frozenset(" \t\r\n\"'`,;)]}<>&")


def _is_credential_value(match: re.Match[str]) -> bool:
    """A high-entropy, key-like value that ends where a value ends (not ``get_token(``)."""
    value = match.group("value")
    after = match.string[match.end():match.end() + 1]
    if after and after not in _VALUE_TERMINATORS:
        return False
    lowered = value.lower()
    return (len(value) >= _MIN_CREDENTIAL_LENGTH
            and shannon_entropy(value) >= ENTROPY_THRESHOLD
            and _looks_random(value)
            and not any(word in lowered for word in _PLACEHOLDER_WORDS))


def _is_email(match: re.Match[str]) -> bool:
    """Rejects ``logo@2x.png``-style file names and ``git@github.com:org/repo`` remotes."""
    after = match.string[match.end():match.end() + 2]
    is_remote = after[:1] == ":" and after[1:2] not in ("", " ", "\t", "\n")
    return match.group("tld").lower() not in _FILE_EXTENSIONS and not is_remote


_PHONE_SHAPE = re.compile(r"\+\d+(?:(?:[ .\-]|[ ]?\(|\)[ ]?)\d+)*")


def _is_international_phone(match: re.Match[str]) -> bool:
    """8 to 15 digits (E.164), sensible separators, balanced parentheses."""
    text = match.group()
    digits = sum(c.isdigit() for c in text)
    return (8 <= digits <= 15 and text.count("(") == text.count(")")
            and _PHONE_SHAPE.fullmatch(text) is not None)


def _is_payment_card(match: re.Match[str]) -> bool:
    """13-19 digits, one kind of separator, a card-network first digit and a valid Luhn sum."""
    text = match.group()
    digits = re.sub(r"[ \-]", "", text)
    separators = {char for char in text if not char.isdecimal()}
    return (13 <= len(digits) <= 19 and len(separators) <= 1
            and digits[0] in _CARD_FIRST_DIGITS and luhn_valid(digits))


def _is_ssn(match: re.Match[str]) -> bool:
    """SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    area, group, serial = match.group("area", "group", "serial")
    return (area not in ("000", "666") and not area.startswith("9")
            and group != "00" and serial != "0000")


def _is_nino(match: re.Match[str]) -> bool:
    """Prefixes HMRC never allocates (BG, GB, KN, NK, NT, TN, ZZ) are not NI numbers."""
    return match.group("prefix") not in _NINO_UNUSED_PREFIXES


def _always(match: re.Match[str]) -> bool:
    return True


# --------------------------------------------------------------------------- detectors


@dataclass(frozen=True)
class _Detector:
    """One regular expression for one kind of finding, with an optional extra check."""

    category: Category
    kind: str
    pattern: re.Pattern[str]
    accepts: Callable[[re.Match[str]], bool] = _always
    span_group: str | int = 0
    """Which group is the finding (e.g. only the value of ``password=value``)."""
    normalised: bool = False
    """Match against the folded text (lower case, l33t and look-alikes undone)."""
    generic: bool = False
    """Dropped when a specific detector of the same category found an overlapping span."""


# Injection patterns run on folded text: lower case, zero-width characters removed,
# look-alike letters and simple l33t digits mapped back to a-z.
_GAP = r"[^a-z0-9,.;!?]+"
"""Between words: spaces, symbols, underscores - but not sentence punctuation, so a phrase
cannot be stitched together across a clause ("disregard my comment, the rules are fine")."""
_NOT_NEGATED = r"(?<!not )(?<!never )(?<!n't )(?<!n’t )(?<!dont )(?<!cant )"
"""Not right after a negation: "do not ignore your instructions" is advice, not an attack."""
_REVEAL = (r"\b(?:reveal|print|show|display|output|repeat|leak|dump|expose|share|tell~me"
           r"|give~me|write~out)~")


def _words(most: int) -> str:
    """Up to ``most`` filler words, each followed by a gap."""
    return rf"(?:[a-z]+{_GAP}){{0,{most}}}"


def _injection(kind: str, pattern: str) -> _Detector:
    compiled = re.compile(pattern.replace("~", _GAP), re.MULTILINE)
    return _Detector(Category.PROMPT_INJECTION, kind, compiled, normalised=True)


# In these templates "~" stands for a gap between words.
_INJECTION_DETECTORS = (
    _injection("ignore_instructions",
               _NOT_NEGATED + r"\b(?:(?:ignore|disregard|forget|override|bypass)~" + _words(3)
               + r"(?:previous|prior|preceding|above|earlier|initial|original|all|any|every"
               r"|your|system|developer|safety)~" + _words(1)
               + r"(?:instructions?|prompts?|rules|guidelines|directions|directives"
               r"|guardrails|commands|programming)"
               r"|(?:ignore|disregard|forget)~(?:all|everything)~"
               r"(?:above|prior|previously|you~(?:were|have~been)~told)"
               r"|(?:ignore|disregard)~(?:all~of~)?the~above~(?:and|instead))\b"),
    _injection("reveal_system_prompt",
               _REVEAL + _words(3)
               + r"(?:system|hidden|secret|initial|developer|original)~(?:prompt|instructions)\b"
               r"|" + _REVEAL + r"(?:me~|us~)?your~(?:full~|exact~|entire~|complete~|original~"
               r"|initial~)?(?:instructions|prompt(?!~(?!verbatim|exactly|word|now|please)[a-z]))"
               r"\b"),
    _injection("persona_override",
               r"\byou~are~now~(?:(?:in|a|an)~)?(?:dan|developer~mode|jailbroken|jailbreak"
               r"|unrestricted|unfiltered|uncensored|god~mode)\b"
               r"|\bfrom~now~on~you~are~(?:dan|in~developer~mode|jailbroken|unrestricted"
               r"|unfiltered)\b"
               r"|\b(?:act|respond|answer|behave)~(?:as|like)~(?:a~)?dan\b"
               r"|\bdan~mode\b|\bdo~anything~now\b"),
    _injection("act_without_restrictions",
               r"\b(?:act~(?:as|like)|behave|respond|answer|reply|operate|roleplay)~" + _words(6)
               + r"(?:without|with~no|free~(?:of|from)|ignoring|unbound~by)~"
               r"(?:(?:any|all|your|the|its|ethical|moral|safety|content|usual)~){0,3}"
               r"(?:restrictions|restraints|limitations|filters|filtering|censorship|guidelines"
               r"|rules|safeguards|guardrails|ethics|morals|policies|boundaries)\b"),
    _injection("pretend_rules_dont_apply",
               r"\b(?:pretend|imagine)~(?:that~)?" + _words(3)
               + r"(?:rules|restrictions|guidelines|policies|limitations|filters)~"
               r"(?:don[\W_]{0,2}t|do~not|doesn[\W_]{0,2}t|does~not|no~longer)~"
               r"(?:apply|exist|matter|count)\b"
               r"|\b(?:pretend|imagine)~(?:that~)?(?:there~(?:are|is)|you~(?:have|had))~no~"
               + _words(2)
               + r"(?:rules|restrictions|guidelines|policies|limitations|filters)\b"),
    _injection("role_tag",
               r"</?[ \t]*(?:system|assistant|developer|im_start|im_end)[ \t]*>"
               r"|<\|(?:im_start|im_end|system|assistant|endoftext|start_header_id"
               r"|end_header_id|eot_id)\|>"
               r"|\[/?inst\]|<</?sys>>"
               r"|^[ \t]*#{1,6}[ \t]*(?:system|assistant|developer)"
               r"(?:[ \t]+(?:prompt|message|instructions?))?[ \t]*:"),
)


def _secret(kind: str, pattern: str, accepts: Callable[[re.Match[str]], bool] = _always,
            span_group: str | int = 0, generic: bool = False) -> _Detector:
    return _Detector(Category.SECRET, kind, re.compile(pattern), accepts, span_group,
                     generic=generic)


_CREDENTIAL_VALUE = r"(?P<value>[A-Za-z0-9!#%+\-./=?@^_~|]{8,})"
_SECRET_DETECTORS = (
    _secret("anthropic_api_key",
            r"(?<![A-Za-z0-9_-])sk-ant-(?P<body>[A-Za-z0-9_-]{20,})", _looks_like_key),
    _secret("openai_api_key",
            r"(?<![A-Za-z0-9_-])sk-(?!ant-)(?:proj-|svcacct-|admin-)?(?P<body>[A-Za-z0-9_-]{20,})",
            _looks_like_key),
    _secret("aws_access_key_id", r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])"),
    _secret("aws_secret_access_key",
            r"(?i:aws[_\-. ]?secret(?:[_\-. ]?access)?(?:[_\-. ]?key)?)[\"']?[ \t]*(?::|=>?)"
            r"[ \t]*[\"']?(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])", span_group="value"),
    _secret("github_token",
            r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}(?![A-Za-z0-9])"
            r"|github_pat_[A-Za-z0-9_]{22,})", _looks_random_match),
    _secret("slack_token", r"(?<![A-Za-z0-9])xox[baprs]-[A-Za-z0-9-]{10,}", _has_digit),
    _secret("google_api_key", r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    _secret("stripe_live_key", r"(?<![A-Za-z0-9_])(?:sk|rk)_live_[0-9A-Za-z]{16,}"),
    _secret("jwt", r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    _secret("private_key",
            r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----[^-]*(?:-(?!----)[^-]*)*"
            r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?"),
    _secret("credential_assignment",
            r"(?i)(?<![a-z])(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey"
            r"|access[_-]?key|private[_-]?key|auth)(?:[_-]?(?:key|token|value|secret))?"
            r"[\"']?[ \t]*(?::=|=>|[:=])[ \t]*[\"']?" + _CREDENTIAL_VALUE,
            _is_credential_value, span_group="value", generic=True),
    _secret("bearer_token", r"(?i)\bbearer[ \t]+" + _CREDENTIAL_VALUE,
            _is_credential_value, span_group="value", generic=True),
)


def _pii(kind: str, pattern: str,
         accepts: Callable[[re.Match[str]], bool] = _always) -> _Detector:
    return _Detector(Category.PII, kind, re.compile(pattern), accepts)


_PII_DETECTORS = (
    _pii("email",
         r"(?<![\w.+%/-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+"
         r"(?P<tld>[A-Za-z]{2,24})(?![\w-])", _is_email),
    _pii("phone", r"(?<![\w+])\+[1-9][\d \-.()]{5,20}\d(?!\d)", _is_international_phone),
    _pii("phone",
         r"(?<![\w.+\-/$#])(?:1[ .\-])?(?:\(\d{3}\)[ ]?\d{3}[ .\-]\d{4}"
         r"|\d{3}(?P<sep>[.\-])\d{3}(?P=sep)\d{4}|\d{3} \d{3} \d{4})(?![\w\-]|[.,]\d)"),
    _pii("payment_card", r"(?<![\d\-.])\d(?:[ \-]?\d){12,18}(?!\d|[.,]\d)", _is_payment_card),
    _pii("ssn",
         r"(?<![\w\-])(?P<area>\d{3})-(?P<group>\d{2})-(?P<serial>\d{4})(?![\w\-])", _is_ssn),
    _pii("uk_national_insurance_number",
         r"(?<![A-Za-z0-9])(?P<prefix>[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])"
         r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])", _is_nino),
)


# --------------------------------------------------------------------------- encoded text

_BASE64_BLOB = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,}={0,2}")


def _decoded_text(blob: str) -> str | None:
    """The text a base64 (or base64url) blob decodes to, or None for binary or invalid data."""
    body = blob.rstrip("=").replace("-", "+").replace("_", "/")
    body = body[: len(body) - len(body) % 4] if len(body) % 4 == 1 else body
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    printable = sum(c.isprintable() or c in "\n\r\t" for c in text)
    return text if text and printable >= _MIN_PRINTABLE_SHARE * len(text) else None


def _hides_injection(match: re.Match[str]) -> bool:
    """A base64 blob that decodes to readable text containing a prompt injection."""
    text = _decoded_text(match.group())
    return text is not None and any(_injection_spans(text))


_ENCODED_INJECTION = _Detector(Category.PROMPT_INJECTION, "encoded_injection", _BASE64_BLOB,
                               _hides_injection)

_DETECTORS: tuple[_Detector, ...] = (*_INJECTION_DETECTORS, _ENCODED_INJECTION,
                                     *_SECRET_DETECTORS, *_PII_DETECTORS)

KINDS: dict[Category, tuple[str, ...]] = {
    category: tuple(dict.fromkeys(d.kind for d in _DETECTORS if d.category is category))
    for category in Category
}
"""Every kind of finding the guardian can report, per category."""


# --------------------------------------------------------------------------- folding text

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s"})
_LOOK_ALIKES = {
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i",
    "ѕ": "s", "ј": "j", "ԁ": "d", "ο": "o", "α": "a", "ε": "e", "ι": "i", "ν": "v",
    "ρ": "p", "τ": "t",
}


def _fold_character(char: str) -> str:
    """One character folded to the plain letters it looks like: fullwidth ``ｉ`` -> ``i``.

    Lower case; accents dropped (``é`` -> ``e``); Cyrillic and Greek look-alikes mapped to
    Latin; l33t digits mapped to letters (``0`` -> ``o``); invisible format characters
    (zero-width space, joiners, bidi controls) folded to nothing, so
    "ig<zero-width space>nore" reads as "ignore".
    """
    lowered = char.lower()
    if char.isascii():
        return lowered.translate(_LEET)
    if lowered in _LOOK_ALIKES:
        return _LOOK_ALIKES[lowered]
    if unicodedata.category(char) == "Cf":
        return ""
    decomposed = unicodedata.normalize("NFKD", char)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower().translate(_LEET)


class _FoldTable(dict[int, str]):
    """A ``str.translate`` table that folds each character the first time it is seen.

    Translating in C keeps folding a megabyte of text fast; the cache is bounded so text
    using every Unicode character cannot grow it without limit.
    """

    _LIMIT = 65_536

    def __missing__(self, code: int) -> str:
        if len(self) >= self._LIMIT:
            self.clear()
        folded = self[code] = _fold_character(chr(code))
        return folded


_FOLD_TABLE = _FoldTable()


@dataclass(frozen=True)
class _PositionMap:
    """Maps positions in folded text back to the original text.

    Folding is one character for one almost everywhere; the anchors (pairs of positions)
    mark where that stops holding: at characters folded to nothing or to several characters.
    """

    folded_positions: list[int]
    original_positions: list[int]

    def original(self, position: int) -> int:
        index = bisect.bisect_right(self.folded_positions, position) - 1
        return self.original_positions[index] + position - self.folded_positions[index]


def _position_map(text: str, uneven: set[str]) -> _PositionMap:
    """Anchors at every character of ``text`` whose folded form is not one character long."""
    folded_positions, original_positions = [0], [0]
    folded, previous = 0, 0
    pattern = re.compile("[" + "".join(re.escape(c) for c in sorted(uneven)) + "]")
    for match in pattern.finditer(text):
        index = match.start()
        folded += index - previous
        width = len(_FOLD_TABLE[ord(text[index])])
        folded_positions += [folded + step for step in range(width)] + [folded + width]
        original_positions += [index] * width + [index + 1]
        folded += width
        previous = index + 1
    return _PositionMap(folded_positions, original_positions)


def _fold(text: str) -> tuple[str, _PositionMap | None]:
    """Text for the injection patterns, and a map back to ``text``'s positions.

    The map is None when every character folded to exactly one character.
    """
    folded = text.translate(_FOLD_TABLE)
    if text.isascii():
        return folded, None
    uneven = {char for char in set(text) if len(_FOLD_TABLE[ord(char)]) != 1}
    return folded, (_position_map(text, uneven) if uneven else None)


def _injection_spans(text: str) -> Iterator[tuple[_Detector, int, int]]:
    """Every phrase-level injection in ``text`` as (detector, start, end) in ``text``."""
    folded, positions = _fold(text)
    for detector in _INJECTION_DETECTORS:
        for match in detector.pattern.finditer(folded):
            start, end = match.span()
            if positions is not None:
                start, end = positions.original(start), positions.original(end - 1) + 1
            yield detector, start, end


# --------------------------------------------------------------------------- screening text


@dataclass(frozen=True, order=True)
class _Hit:
    """A finding within one string, before it gets its place."""

    start: int
    end: int
    rank: int
    category: Category = field(compare=False)
    kind: str = field(compare=False)


def _pattern_hits(text: str, rank: int, detector: _Detector) -> Iterator[_Hit]:
    for match in detector.pattern.finditer(text):
        if detector.accepts(match):
            start, end = match.span(detector.span_group)
            yield _Hit(start, end, rank, detector.category, detector.kind)


def _raw_hits(text: str, categories: frozenset[Category]) -> Iterator[_Hit]:
    if Category.PROMPT_INJECTION in categories:
        for detector, start, end in _injection_spans(text):
            yield _Hit(start, end, _RANKS[detector.kind], detector.category, detector.kind)
    for rank, detector in enumerate(_DETECTORS):
        if detector.category in categories and not detector.normalised:
            yield from _pattern_hits(text, rank, detector)


def _without_shadowed(hits: list[_Hit]) -> list[_Hit]:
    """Drops generic hits (``password=...``) that overlap a specific one of their category."""
    specific = {category: _merged([(h.start, h.end) for h in hits
                                   if h.category is category and not _is_generic(h)])
                for category in {h.category for h in hits}}
    return [h for h in hits
            if not (_is_generic(h) and _overlaps_any(specific[h.category], h.start, h.end))]


_GENERIC_KINDS = frozenset(d.kind for d in _DETECTORS if d.generic)
_RANKS = {detector.kind: rank for rank, detector in reversed(list(enumerate(_DETECTORS)))}


def _is_generic(hit: _Hit) -> bool:
    return hit.kind in _GENERIC_KINDS


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint spans covering the same characters as ``spans``."""
    result: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if result and start < result[-1][1]:
            result[-1] = (result[-1][0], max(result[-1][1], end))
        else:
            result.append((start, end))
    return result


def _overlaps_any(disjoint: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) overlaps one of the sorted, disjoint spans."""
    index = bisect.bisect_left(disjoint, (end, end))
    return index > 0 and disjoint[index - 1][1] > start


def _without_nested(hits: list[_Hit]) -> list[_Hit]:
    """Drops hits lying wholly inside an earlier-ranked hit of the same category.

    E.g. ``+1 555 123 4567`` is one phone number, not also the US number inside it.
    """
    kept: list[_Hit] = []
    reach: dict[Category, int] = {}
    for hit in sorted(hits, key=lambda h: (h.start, -h.end, h.rank)):
        if hit.end > reach.get(hit.category, -1):
            kept.append(hit)
            reach[hit.category] = hit.end
    return kept


_KIND_NAMES = "|".join(sorted({d.kind for d in _DETECTORS}, key=len, reverse=True))
_REDACTION_MARK = re.compile(
    re.escape(REDACTION.split("{", 1)[0]) + rf"(?:{_KIND_NAMES})(?:\+(?:{_KIND_NAMES}))*\]")


def _without_redaction_marks(text: str) -> str:
    """``text`` with earlier ``[REDACTED:...]`` marks blanked out (same length, so spans hold).

    Otherwise a mark such as ``[REDACTED:reveal_system_prompt]`` would itself read as
    "reveal system prompt", and a redacted output would be flagged again at the next node.
    """
    if "[REDACTED:" not in text:
        return text
    return _REDACTION_MARK.sub(lambda mark: " " * len(mark.group()), text)


def _hits(text: str, categories: frozenset[Category]) -> list[_Hit]:
    """Every finding in one string, sorted by position; duplicate and shadowed hits removed."""
    raw = _raw_hits(_without_redaction_marks(text), categories)
    return sorted(_without_nested(_without_shadowed(list(raw))))


def _redacted(text: str, hits: list[_Hit]) -> str:
    """``text`` with every hit's span replaced; overlapping spans become one marker."""
    pieces: list[str] = []
    cursor = 0
    for start, end, kinds in _redaction_groups(hits):
        pieces += [text[cursor:start], REDACTION.format(kind="+".join(kinds))]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _redaction_groups(hits: list[_Hit]) -> list[tuple[int, int, list[str]]]:
    """Overlapping hits merged into (start, end, kinds in order of appearance)."""
    groups: list[tuple[int, int, list[str]]] = []
    for hit in sorted(hits):
        if groups and hit.start < groups[-1][1]:
            start, end, kinds = groups[-1]
            new_kinds = kinds if hit.kind in kinds else [*kinds, hit.kind]
            groups[-1] = (start, max(end, hit.end), new_kinds)
        else:
            groups.append((hit.start, hit.end, [hit.kind]))
    return groups


# --------------------------------------------------------------------------- walking values

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_ALL_CATEGORIES = frozenset(Category)


def _key_segment(key: Any, position: int, key_is_clean: bool) -> str:
    """How a dict key shows in a path: ``.name`` for plain, clean names, else ``[#position]``.

    A key that is not a plain identifier, or that itself holds a secret or PII, is shown
    by its position only, so a path can never leak what the key contains.
    """
    if isinstance(key, str) and key_is_clean and _PLAIN_KEY.fullmatch(key):
        return f".{key}"
    return f"[#{position}]"


_Path = tuple[Any, str]
"""A place inside a value as a linked list: (parent place or None, this segment).

Segments are joined only when a finding needs its ``where``, so walking deeply nested
values costs memory in proportion to their depth, not to the square of it.
"""


def _render(path: _Path | None) -> str:
    """The ``where`` text of a place, e.g. ``output.sections[2]``."""
    segments: list[str] = []
    while path is not None:
        path, segment = path
        segments.append(segment)
    return "".join(reversed(segments))


@dataclass
class _Frame:
    """A dict, list or tuple being walked: its entries still to visit and its rebuilt parts."""

    source: dict[Any, Any] | list[Any] | tuple[Any, ...]
    entries: Iterator[tuple[Any, _Path, Any]]
    key_in_parent: Any
    built: list[tuple[Any, Any]] = field(default_factory=list)

    def assemble(self) -> Any:
        if isinstance(self.source, dict):
            return dict(self.built)
        values = [value for _, value in self.built]
        return tuple(values) if isinstance(self.source, tuple) else values


class Guardian:
    """Screens values for prompt injection, secrets and PII, then flags, redacts or blocks.

    >>> guardian = Guardian("redact")
    >>> screening = guardian.screen({"reply": "Mail alice@example.com"}, "output")
    >>> [f.describe() for f in screening.findings]
    ['pii (email) in output.reply']
    >>> screening.value
    {'reply': 'Mail [REDACTED:email]'}
    """

    def __init__(self, action: Action | str = Action.FLAG,
                 categories: Iterable[Category | str] | None = None) -> None:
        self.action = Action(action)
        self.categories = (_ALL_CATEGORIES if categories is None
                           else frozenset(Category(c) for c in categories))

    def __repr__(self) -> str:
        names = ", ".join(sorted(c.value for c in self.categories))
        return f"Guardian(action={self.action.value!r}, categories=[{names}])"

    def screen(self, value: Any, where: str) -> Screening:
        """Screen every string in ``value`` (a str, or dicts/lists/tuples of them).

        ``where`` names the value's place, ``"input"`` or ``"output"``; findings inside
        nested values extend it with their path (``"output.sections[2]"``). Values that
        are not strings, dicts, lists or tuples pass through unscreened.
        """
        findings: list[Finding] = []
        screened = self._walk(value, where, findings)
        redacts = self.action is Action.REDACT and bool(findings)
        return Screening(findings=tuple(findings), value=screened if redacts else value,
                         blocked=self.action is Action.BLOCK and bool(findings))

    def _screen_leaf(self, value: Any, path: _Path, findings: list[Finding]) -> Any:
        """Screen one string (anything else passes through); returns it redacted if due."""
        if not isinstance(value, str):
            return value
        hits = _hits(value, self.categories)
        if not hits:
            return value
        where = _render(path)
        findings += [Finding(h.category, h.kind, where, h.start, h.end) for h in hits]
        return _redacted(value, hits) if self.action is Action.REDACT else value

    def _walk(self, value: Any, where: str, findings: list[Finding]) -> Any:
        """Depth-first walk without recursion, so deep nesting cannot overflow the stack."""
        root: _Path = (None, where)
        if not isinstance(value, _CONTAINERS):
            return self._screen_leaf(value, root, findings)
        stack = [_Frame(value, self._entries(value, root, findings), None)]
        on_path = {id(value)}
        while True:
            frame = stack[-1]
            entry = next(frame.entries, None)
            if entry is None:
                stack.pop()
                on_path.discard(id(frame.source))
                if not stack:
                    return frame.assemble()
                stack[-1].built.append((frame.key_in_parent, frame.assemble()))
                continue
            key, path, child = entry
            if isinstance(child, _CONTAINERS) and id(child) not in on_path:
                stack.append(_Frame(child, self._entries(child, path, findings), key))
                on_path.add(id(child))
            else:
                frame.built.append((key, self._screen_leaf(child, path, findings)))

    def _entries(self, container: Any, path: _Path,
                 findings: list[Finding]) -> Iterator[tuple[Any, _Path, Any]]:
        """(key in the rebuilt container, path, child) for each child; dict keys are screened."""
        if not isinstance(container, dict):
            for index, child in enumerate(container):
                yield index, (path, f"[{index}]"), child
            return
        used: set[Any] = set()
        for position, (key, child) in enumerate(container.items()):
            new_key, segment = self._screen_key(key, position, path, findings)
            if new_key in used:
                new_key = f"{new_key}#{position}"
            used.add(new_key)
            yield new_key, (path, segment), child

    def _screen_key(self, key: Any, position: int, path: _Path,
                    findings: list[Finding]) -> tuple[Any, str]:
        """A dict key's (possibly redacted) self and its path segment."""
        key_is_clean = not isinstance(key, str) or not _hits(key, _ALL_CATEGORIES)
        segment = _key_segment(key, position, key_is_clean)
        if key_is_clean:
            return key, segment
        return self._screen_leaf(key, (path, f"{segment}<key>"), findings), segment
