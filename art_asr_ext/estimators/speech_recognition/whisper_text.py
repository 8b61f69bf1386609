"""
Text conventions between Whisper and LibriSpeech-style references.

Whisper writes cased, punctuated text with digits ("Mr. Quilter, 1850."); LibriSpeech references are upper case
letters, apostrophes and spaces ("MISTER QUILTER EIGHTEEN FIFTY"). The package's one normaliser,
:func:`art_asr_ext.utils.text.to_librispeech_text`, maps Whisper's output onto the reference convention so WER compares
like with like; :func:`to_whisper_text` maps a LibriSpeech-style target onto the form Whisper writes, so a targeted
loss asks for text the model can plausibly produce.

| Paper link: https://arxiv.org/abs/2212.04356
"""

import re

from art_asr_ext.utils.text import is_librispeech_text


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
