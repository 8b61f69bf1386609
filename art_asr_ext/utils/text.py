"""
The one normalisation of text to LibriSpeech's transcript conventions in this package: upper case letters A-Z,
apostrophes inside words and single spaces, with numbers, ordinals and common abbreviations written out as they are
spoken (years in pairs: 1863 -> EIGHTEEN SIXTY THREE) and accents folded (cafe).

- :func:`to_librispeech_text` normalises any transcript (a recognizer's output, a target phrase) and never fails: a
  character with no spoken form becomes a word break.
- The synthetic corpus feeds the *spoken form* (:func:`spoken_form`, which refuses such characters rather than guess)
  to the TTS voice and writes its transcript (:func:`librispeech_transcript`), so the audio says exactly the words of
  the transcript.

Both apply the same rules, so a reference and a hypothesis are normalised alike.
"""

import functools
import re
import unicodedata
from typing import Optional


@functools.lru_cache(maxsize=None)
def _inflect():
    """inflect's engine, made on first use: importing inflect takes about 3 s, which every process paid at start."""
    import inflect

    return inflect.engine()


# Abbreviations LibriSpeech's transcribers wrote out in full (as spoken in the recordings).
ABBREVIATIONS = {
    "mr": "mister",
    "mrs": "missus",
    "dr": "doctor",
    "st": "saint",
    "co": "company",
    "jr": "junior",
    "sr": "senior",
    "capt": "captain",
    "col": "colonel",
    "gen": "general",
    "lt": "lieutenant",
    "rev": "reverend",
    "hon": "honorable",
    "no": "number",
}
_ABBREVIATION = re.compile(r"\b(" + "|".join(ABBREVIATIONS) + r")\.(?=\s|$)", re.IGNORECASE)
_ABBREVIATION_BEFORE_NUMBER = re.compile(r"\bno\.(?=\s*\d)", re.IGNORECASE)
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_SPEAKABLE = re.compile(r"[^a-z' ,.;:!?\"()\-]")
#: Symbols a transcript may hold that have one spoken form.
SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at "}
_LIBRISPEECH_TEXT = re.compile(r"^[A-Z' ]*$")


def _year(value: int) -> Optional[str]:
    """Years are read in pairs: 1863 -> eighteen sixty three, 1905 -> nineteen oh five, 1900 -> nineteen hundred."""
    if not 1100 <= value <= 1999:
        return None
    high, low = divmod(value, 100)
    if low == 0:
        return f"{_inflect().number_to_words(high)} hundred"
    if low < 10:
        return f"{_inflect().number_to_words(high)} o {_inflect().number_to_words(low)}"
    return f"{_inflect().number_to_words(high)} {_inflect().number_to_words(low)}"


def _number_words(match: "re.Match[str]") -> str:
    grouped = "," in match.group(0)
    text = match.group(0).replace(",", "")
    if "." in text:
        whole, fraction = text.split(".")
        return f"{_inflect().number_to_words(int(whole))} point {' '.join(_inflect().number_to_words(d) for d in fraction)}"
    value = int(text)
    year = None if grouped else _year(value)
    return year or _inflect().number_to_words(value)


def _written_out(text: str) -> str:
    """Accents folded, curly quotes straightened, abbreviations, ordinals and numbers written out; lower case."""
    # Fold accented letters (cafe, deja); other non-ASCII characters stay for the caller to judge.
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = _ABBREVIATION_BEFORE_NUMBER.sub("number", text)
    text = _ABBREVIATION.sub(lambda m: ABBREVIATIONS[m.group(1).lower()], text)
    text = _ORDINAL.sub(lambda m: _inflect().ordinal(_inflect().number_to_words(int(m.group(1)))), text)
    text = _NUMBER.sub(_number_words, text)
    return text.lower()


def spoken_form(text: str) -> Optional[str]:
    """
    Write a sentence as it is to be spoken: accents folded to ASCII, abbreviations, ordinals and numbers written out,
    punctuation kept (the voice uses it for prosody).

    :param text: Raw sentence.
    :return: Lower-case spoken form, or `None` if the sentence holds a character that has no agreed spoken form
             (currency, symbols, brackets of editorial notes, ...), so it is left out rather than guessed.
    """
    text = _written_out(text)
    if _SPEAKABLE.search(text):
        return None
    return " ".join(text.split())


def librispeech_transcript(spoken: str) -> str:
    """
    :param spoken: Output of :func:`spoken_form`.
    :return: LibriSpeech transcript: upper case letters, apostrophes inside words, single spaces.
    """
    words = re.sub(r"[^a-z']+", " ", spoken.replace("-", " ")).split()
    words = [word.strip("'") for word in words]
    return " ".join(word for word in words if word).upper()


def to_librispeech_text(text: str) -> str:
    """
    Normalise any transcript to the LibriSpeech convention, e.g. a recognizer's "Mr. Quilter, 1850." to
    "MISTER QUILTER EIGHTEEN FIFTY", by the rules of :func:`spoken_form`; "&", "%", "+" and "@" become words, and
    every other character without a spoken form becomes a word break.

    :param text: Any transcript.
    :return: The normalised transcript (empty if it holds no words).
    """
    text = text.replace("\u2018", "'")
    for symbol, words in SYMBOLS.items():
        text = text.replace(symbol, words)
    return librispeech_transcript(_written_out(text))


def is_librispeech_text(text: str) -> bool:
    """True if `text` follows the LibriSpeech convention (upper case letters, apostrophes and spaces only)."""
    return bool(_LIBRISPEECH_TEXT.match(text)) and bool(text.strip())
