"""
Text conventions between Whisper and LibriSpeech-style references.

Whisper writes cased, punctuated text with digits ("Mr. Quilter, 1850."); LibriSpeech references are upper case
letters, apostrophes and spaces ("MISTER QUILTER EIGHTEEN FIFTY"). :func:`to_librispeech_text` maps Whisper's output
onto the reference convention so WER compares like with like; :func:`to_whisper_text` maps a LibriSpeech-style
target onto the form Whisper writes, so a targeted loss asks for text the model can plausibly produce.

| Paper link: https://arxiv.org/abs/2212.04356
"""

import re
import unicodedata

_ONES = (
    "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN FOURTEEN FIFTEEN SIXTEEN "
    "SEVENTEEN EIGHTEEN NINETEEN"
).split()
_TENS = "_ _ TWENTY THIRTY FORTY FIFTY SIXTY SEVENTY EIGHTY NINETY".split()
_SCALES = ((10**9, "BILLION"), (10**6, "MILLION"), (1000, "THOUSAND"))
_SYMBOLS = {"&": " AND ", "%": " PERCENT ", "+": " PLUS ", "@": " AT "}
_LIBRISPEECH_TEXT = re.compile(r"^[A-Z' ]*$")


def _below_thousand(number: int) -> str:
    words = []
    if number >= 100:
        words += [_ONES[number // 100], "HUNDRED"]
        number %= 100
        if number:
            words.append("AND")
    if number >= 20:
        words.append(_TENS[number // 10])
        number %= 10
        if number:
            words.append(_ONES[number])
    elif number or not words:
        words.append(_ONES[number])
    return " ".join(words)


def spell_number(number: int) -> str:
    """
    Spell a non-negative integer in words, British style, as LibriSpeech transcripts do ("ONE HUNDRED AND TWO").

    Years are spelled as cardinals ("ONE THOUSAND EIGHT HUNDRED AND FIFTY"), which a reader of 1850 would not say:
    such a word differs from the reference and counts as an error.

    :param number: Integer >= 0.
    :return: Upper-case words.
    """
    if number < 0:
        raise ValueError(f"number must be >= 0. Found: {number}")
    if number < 1000:
        return _below_thousand(number)
    words = []
    for scale, name in _SCALES:
        if number >= scale:
            words += [spell_number(number // scale), name]
            number %= scale
    if number:
        words += (["AND"] if number < 100 else []) + [_below_thousand(number)]
    return " ".join(words)


def to_librispeech_text(text: str) -> str:
    """
    Normalise a transcript to the LibriSpeech convention: upper case letters A-Z, apostrophes inside or closing a
    word, single spaces.

    Accents are removed ("café" -> "CAFE"), digits are spelled out (see :func:`spell_number`), "&" and "%" become
    words, hyphens and every other character become word breaks.

    :param text: Any transcript, e.g. Whisper's output.
    :return: The normalised transcript.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).replace("\u2019", "'").replace("\u2018", "'")
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", text)
    text = re.sub(r"\d+", lambda match: f" {spell_number(int(match.group()))} ", text)
    text = re.sub(r"[^A-Z']+", " ", text.upper())
    # Keep apostrophes inside words (DON'T) and after a plural s (PARENTS'); drop quotation marks.
    text = re.sub(r"(?<![A-Z])'+|'+(?![A-Z])(?<!S')", " ", text)
    return " ".join(text.split())


def is_librispeech_text(text: str) -> bool:
    """True if `text` follows the LibriSpeech convention (upper case letters, apostrophes and spaces only)."""
    return bool(_LIBRISPEECH_TEXT.match(text)) and bool(text.strip())


def to_whisper_text(text: str) -> str:
    """
    The form of a target transcript that a Whisper loss is computed toward.

    A LibriSpeech-style target ("OPEN THE DOOR I SAID") is written as Whisper would write it: a leading space,
    sentence case with the pronoun I capitalised, and a closing full stop (" Open the door I said."). Whisper ends
    sentences with punctuation, so the stop lowers the loss of the true transcript of a clean LibriSpeech clip (by
    about 40 % on 1089-134686-0001 with tiny.en); :func:`to_librispeech_text` drops it again. Any other text (mixed
    case, punctuation) is used verbatim, with a leading space added if it has none, so callers who want an exact
    Whisper string can give it.

    :param text: Target transcript.
    :return: Text to tokenise after Whisper's prompt.
    """
    text = " ".join(text.split())
    if is_librispeech_text(text):
        text = text.lower()
        text = re.sub(r"\bi\b(?='|\s|$)", "I", text)
        text = text[0].upper() + text[1:] + "."
    return text if text.startswith(" ") else " " + text
