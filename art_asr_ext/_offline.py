"""
Keep ESPnet offline.

Importing ESPnet's tokenizers or ``espnet2.tasks.asr`` imports ``g2p_en``, whose import calls ``nltk.download`` for
two NLTK resources when they are missing: a network attempt (and an error in the user's log) on every machine
without them, although only ESPnet's ``g2p_en`` phoneme tokenizers ever use ``g2p_en``. Before any ESPnet import,
this package puts a stand-in ``g2p_en`` module in ``sys.modules``. Its ``G2p`` loads the real ``g2p_en`` when the
NLTK resources are installed locally (so such a model keeps working), and otherwise raises an error that says what
to install; it never downloads.
"""

import importlib
import importlib.util
import sys
import types

_RESOURCES = ("taggers/averaged_perceptron_tagger_eng.zip", "corpora/cmudict.zip")


class _OfflineG2p:
    """``g2p_en.G2p`` without the download: the real one if NLTK's data is installed, else a clear error."""

    def __new__(cls, *args, **kwargs):
        import nltk

        missing = []
        for resource in _RESOURCES:
            try:
                nltk.data.find(resource)
            except LookupError:
                missing.append(resource)
        if missing:
            raise RuntimeError(
                f"This ESPnet model phonemises text with g2p_en, which needs the NLTK data {missing}. art_asr_ext "
                f"never downloads; install them first (python -m nltk.downloader averaged_perceptron_tagger_eng "
                f"cmudict)."
            )
        stand_in = sys.modules.pop("g2p_en")
        try:
            real = importlib.import_module("g2p_en")  # finds the data, so it downloads nothing
        finally:
            sys.modules["g2p_en"] = stand_in
        stand_in.G2p = real.G2p
        return real.G2p(*args, **kwargs)


def install() -> None:
    """Put the stand-in ``g2p_en`` in place unless the real one is already imported (or not installed)."""
    if "g2p_en" in sys.modules or importlib.util.find_spec("g2p_en") is None:
        return
    module = types.ModuleType("g2p_en", __doc__)
    module.G2p = _OfflineG2p
    sys.modules["g2p_en"] = module
