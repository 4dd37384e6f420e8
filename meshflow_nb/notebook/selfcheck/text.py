"""What a self-check reads in a learner's text: words, filler, and the same item twice.

Filler is text that fills a cell without saying anything: placeholder words ("todo",
"xxx", "lorem"), one word over and over, or too few distinct words to carry a point.
Two texts are the same item when they use the same words, whatever their case,
punctuation, numbering and word order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ...errors import shown

PLACEHOLDER_WORDS = frozenset({
    "todo", "tbd", "tbc", "fixme", "xxx", "lorem", "ipsum", "dolor", "asdf", "asdfgh",
    "qwerty", "blah", "foo", "foobar"})
"""Words that only ever stand in for an answer still to write."""

PLACEHOLDER_PHRASES = ("your answer", "fill in", "fill me", "type here", "write here",
                       "goes here", "something here", "n/a")
"""Phrases that say "the answer goes here" rather than give it."""

STOPWORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "nor", "so", "if", "then", "than", "that", "this",
    "these", "those", "it", "its", "is", "are", "was", "were", "be", "been", "being", "to",
    "of", "in", "on", "at", "by", "for", "from", "with", "without", "as", "into", "onto",
    "over", "under", "about", "i", "you", "we", "they", "he", "she", "me", "my", "our", "your",
    "their", "them", "us", "not", "no", "yes", "do", "does", "did", "done", "can", "could",
    "will", "would", "should", "shall", "may", "might", "must", "have", "has", "had", "just",
    "very", "also", "too", "more", "most"})
"""Words that carry grammar, not content: left out when counting distinct words."""

_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
_REPEATED_CHAR = re.compile(r"(.)\1{2,}")


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased, in order (numbers count as words)."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """The words that carry content: no stopwords, no numbers, three letters or more."""
    return [w for w in words(text)
            if len(w) >= 3 and w not in STOPWORDS and not w.isdigit()]


def stem(word: str) -> str:
    """A crude stem, so that "keys" meets "key" and "manager" meets "management"."""
    if len(word) > 3 and word.endswith("s"):
        word = word[:-1]
    return word[:5]


def stems(text: str) -> set[str]:
    """The stems of the content words of ``text``."""
    return {stem(w) for w in content_words(text)}


def placeholder_in(text: str) -> str | None:
    """The placeholder in ``text`` ("todo", "xxx", "your answer", ...), if there is one."""
    lowered = text.lower()
    phrase = next((p for p in PLACEHOLDER_PHRASES if p in lowered), None)
    if phrase:
        return phrase
    return next((w for w in words(text)
                 if w in PLACEHOLDER_WORDS or _REPEATED_CHAR.fullmatch(w)), None)


def filler_reason(text: str, *, min_words: int = 1, min_distinct: int = 0) -> str | None:
    """Why ``text`` says nothing (a phrase to follow "it ..."), or None when it may."""
    found = words(text)
    if not found:
        return "has no words"
    placeholder = placeholder_in(text)
    if placeholder:
        return f"is placeholder text ({shown(placeholder)})"
    if len(found) < min_words:
        return f"is too short: write at least {min_words} words"
    if len(found) >= 4 and len(set(found)) * 2 <= len(found):
        return "repeats the same words"
    if len(set(content_words(text))) < min_distinct:
        return f"has too few distinct words: use at least {min_distinct} different ones"
    return None


def item_key(text: str) -> tuple[str, ...]:
    """What makes two items the same: their content words, sorted, without numbers."""
    return tuple(sorted(set(content_words(text)))) or (text.strip().lower(),)


def first_duplicate(texts: Sequence[str]) -> tuple[int, int] | None:
    """Positions ``(earlier, later)`` of the first item that repeats an earlier one."""
    seen: dict[tuple[str, ...], int] = {}
    for position, text in enumerate(texts):
        key = item_key(text)
        if key in seen:
            return seen[key], position
        seen[key] = position
    return None
