"""
The word language model the embedded models decode with: a directory that holds the ARPA model and the decoding
weights tuned with it for each estimator type (made by ``benchmarks/build_language_model.py``), or a bare ARPA file.
"""

import json
import os
from pathlib import Path
from typing import Any, Dict, Union

#: The ARPA model of a language model directory (gzipped; KenLM reads it as it is).
ARPA_FILE = "lm.arpa.gz"
#: The decoding settings tuned with it, per estimator type: the estimator's keyword arguments besides the model path.
DECODING_FILE = "decoding.json"
#: Each estimator type's keyword arguments: the language model's path, then the tuned settings.
DECODING_KEYS = {
    "deepspeech2": ("lm_path", ("alpha", "beta", "beam_width")),
    "espnet": ("lm_path", ("lm_weight", "word_score")),
}


def language_model_options(language_model: Union[str, os.PathLike], estimator_type: str) -> Dict[str, Any]:
    """
    An estimator's keyword arguments for decoding with a word language model.

    :param language_model: A language model directory, or an ARPA file (then the estimator's defaults weight it, and
                           the caller gives the weights).
    :param estimator_type: `deepspeech2` or `espnet`.
    :return: The model's path and, from a directory, the weights tuned for this estimator type (DeepSpeech2 also gets
             `decoder_type="beam"`).
    """
    if estimator_type not in DECODING_KEYS:
        raise ValueError(f"estimator_type must be one of {tuple(DECODING_KEYS)}. Found: {estimator_type!r}")
    path_key, tuned_keys = DECODING_KEYS[estimator_type]
    path = Path(language_model)
    options: Dict[str, Any] = {"decoder_type": "beam"} if estimator_type == "deepspeech2" else {}
    if path.is_file():
        return {**options, path_key: path}
    if not (path / ARPA_FILE).is_file() or not (path / DECODING_FILE).is_file():
        raise ValueError(
            f"language_model must be an ARPA file or a directory holding {ARPA_FILE} and {DECODING_FILE} "
            f"(benchmarks/build_language_model.py writes one). Found: {os.fspath(language_model)!r}"
        )
    tuned = json.loads((path / DECODING_FILE).read_text()).get(estimator_type, {})
    missing = [key for key in tuned_keys if key not in tuned]
    if missing:
        raise ValueError(f"{path / DECODING_FILE} lacks {estimator_type}'s {', '.join(missing)}.")
    return {**options, path_key: path / ARPA_FILE, **{key: tuned[key] for key in tuned_keys}}
