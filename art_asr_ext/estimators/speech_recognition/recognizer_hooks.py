"""
What a benchmark (or any batching caller) may ask of every speech recognizer of this package, declared once with
defaults, so that callers never probe for attributes.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import contextlib
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np


class RecognizerHooks:
    """
    Mixin of this package's speech recognizers: batching limits, the alphabet of a character model, and the record of
    what the model received after its defences.
    """

    #: Largest fraction of padding over real samples in an internal batch (see `length_sorted_batches`).
    max_padding: float = 0.25

    @property
    def alphabet(self) -> Optional[Sequence[str]]:
        """The characters a character model can emit (every reference and target must use only these), or None for
        a model with its own tokenizer, which checks its texts itself."""
        return None

    @property
    def fixed_input_samples(self) -> Optional[int]:
        """Samples of the fixed input every clip is padded to (Whisper's 30 s), or None: a batch costs its longest
        utterance."""
        return None

    #: For a recognizer that votes over noisy draws, the stability of each utterance's vote in its last `predict`
    #: (:class:`~art_asr_ext.estimators.speech_recognition.transcript_vote.VoteStability`); None for one that does not.
    last_vote_stability: Optional[List] = None

    @contextlib.contextmanager
    def recording_defended_inputs(self) -> Iterator[List[Tuple[np.ndarray, np.ndarray]]]:
        """
        Record what the model receives after its defences, as `(input, defended input)` pairs appended to the yielded
        list within the block. A recognizer without defences records nothing.
        """
        yield []
