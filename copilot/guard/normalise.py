"""Layer 1: undo the disguises that let an instruction slip past a pattern.

Each function returns a variant of the text (or None when the disguise is absent), so the
detector can say which disguise hid a phrase: NFKC (full-width and "mathematical" letters),
invisible characters (zero-width, bidi controls, Unicode tag characters that smuggle ASCII),
confusables (Cyrillic and Greek look-alikes of Latin letters), spaced-out letters
("i g n o r e") and leetspeak ("1gn0r3").
"""

from __future__ import annotations

import re
import unicodedata

# Zero-width, joiners, word joiner, BOM, soft hyphen, bidi embeddings/overrides/isolates.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u2060-\u2064\u202a-\u202e\u2066-\u2069\ufeff]")
# U+E0020..U+E007E mirror ASCII: text hidden in them is invisible on screen but read by a model.
_TAG_CHARS = re.compile("[\U000e0020-\U000e007e]+")

# Look-alikes of Latin letters from Cyrillic, Greek and IPA (a practical subset of Unicode's
# confusables.txt: the letters an attacker needs to spell English instructions).
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁһӏԛԝвкмнтАВЕКМНОРСТХЅІЈԜαεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧɡɑɩʏ",
    "aeopcyxijsdhlqwbkmhtABEKMHOPCTXSIJWaeikvoptuxABEZHIKMNOPTYXgaiy",
)
_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "l",
        "+": "t",
    }
)
_LEET_WORD = re.compile(r"(?<![\w@$!|+])[\w@$!|+]*[a-zA-Z][\w@$!|+]*")
# Runs of at least four single letters split by one separator: "i g n o r e", "i.g.n.o.r.e".
# Two or more separators between letters mark a word gap.
_SPACED = re.compile(r"(?<![\w])(?:\w[ .\-_*/|]{1,3}){3,}\w(?![\w])")


def json_escapes(text: str) -> str | None:
    """Tool output reaches the guard as serialised JSON, where a line break is the two
    characters backslash-n: undo that so line-anchored rules (a fake "SYSTEM:" turn) apply."""
    if "\\n" not in text and '\\"' not in text:
        return None
    return text.replace("\\r\\n", "\n").replace("\\n", "\n").replace('\\"', '"')


def nfkc(text: str) -> str | None:
    folded = unicodedata.normalize("NFKC", text)
    return folded if folded != text else None


def invisible(text: str) -> str | None:
    visible = _TAG_CHARS.sub(lambda m: " " + _untag(m.group()) + " ", text)
    visible = _INVISIBLE.sub("", visible)
    return visible if visible != text else None


def _untag(run: str) -> str:
    return "".join(chr(ord(c) - 0xE0000) for c in run)


def confusables(text: str) -> str | None:
    """Only words that mix scripts are folded: a whole Russian sentence stays Russian (the
    multilingual patterns read it), while "іgnore" with a Cyrillic і becomes "ignore"."""
    if text.isascii():
        return None
    folded = re.sub(r"\w+", _fold_mixed_word, text)
    return folded if folded != text else None


def _fold_mixed_word(match: re.Match[str]) -> str:
    word = match.group()
    latin = any("a" <= c.lower() <= "z" for c in word)
    foreign = any(c.isalpha() and not c.isascii() for c in word)
    if not (latin and foreign) and not _all_confusable(word):
        return word
    return word.translate(_CONFUSABLES)


def _all_confusable(word: str) -> bool:
    """A word spelt entirely in look-alikes ("ѕуѕтем" is not Russian): fold it too."""
    return (
        len(word) >= 3
        and all(c.translate(_CONFUSABLES).isascii() for c in word)
        and not (word.isascii())
    )


def spaced(text: str) -> str | None:
    if not _SPACED.search(text):
        return None
    return _SPACED.sub(_join_spaced, text)


def _join_spaced(match: re.Match[str]) -> str:
    words = re.split(r"[ .\-_*/|]{2,}", match.group())
    return " ".join(re.sub(r"[ .\-_*/|]", "", w) for w in words)


def leetspeak(text: str) -> str | None:
    """Digits and symbols inside words read as letters; plain numbers ("5 minutes") stay."""
    changed = _LEET_WORD.sub(lambda m: m.group().translate(_LEET), text)
    return changed if changed != text else None


def squash(text: str) -> str:
    """Letters only, lower case: what is left when every separator trick is undone."""
    return re.sub(r"[^a-z]", "", text.lower())


def spaced_runs(text: str) -> list[str]:
    """Each spaced-out run with every separator removed ("i g n o r e  a l l" -> "ignoreall"),
    for the letters-only phrases; short runs ("a b c") say nothing."""
    return [squash(m.group()) for m in _SPACED.finditer(text) if len(squash(m.group())) >= 8]
