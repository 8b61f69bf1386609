"""
The word language models DeepSpeech2 decodes with: a directory that holds the ARPA model and the decoding weights
tuned with it (made by ``benchmarks/build_language_model.py``), or a bare ARPA file.
"""

import json
import os
from pathlib import Path
from typing import Any, Dict, Union

#: The ARPA model of a language model directory (gzipped; KenLM reads it as it is).
ARPA_FILE = "lm.arpa.gz"
#: The beam search settings tuned with it: `PyTorchDeepSpeech2`'s `alpha`, `beta` and `beam_width`.
DECODING_FILE = "decoding.json"
DECODING_KEYS = ("alpha", "beta", "beam_width")


def beam_decoding(language_model: Union[str, os.PathLike]) -> Dict[str, Any]:
    """
    `PyTorchDeepSpeech2`'s keyword arguments for beam search with a language model.

    :param language_model: A language model directory, or an ARPA file (then the estimator's defaults weight it, and
                           the caller gives `alpha`, `beta` and `beam_width`).
    :return: `decoder_type`, `lm_path` and, from a directory, the tuned `alpha`, `beta` and `beam_width`.
    """
    path = Path(language_model)
    if path.is_file():
        return {"decoder_type": "beam", "lm_path": path}
    if not (path / ARPA_FILE).is_file() or not (path / DECODING_FILE).is_file():
        raise ValueError(
            f"language_model must be an ARPA file or a directory holding {ARPA_FILE} and {DECODING_FILE} "
            f"(benchmarks/build_language_model.py writes one). Found: {os.fspath(language_model)!r}"
        )
    decoding = json.loads((path / DECODING_FILE).read_text())
    missing = [key for key in DECODING_KEYS if key not in decoding]
    if missing:
        raise ValueError(f"{path / DECODING_FILE} lacks {', '.join(missing)}.")
    return {"decoder_type": "beam", "lm_path": path / ARPA_FILE, **{key: decoding[key] for key in DECODING_KEYS}}
