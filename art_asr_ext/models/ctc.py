"""
Connectionist temporal classification (CTC) helpers shared by the CTC models.

| Paper link: https://www.cs.toronto.edu/~graves/icml_2006.pdf
"""

from typing import Sequence


def ctc_frames_needed(tokens: Sequence[int]) -> int:
    """
    Fewest CTC frames that can emit `tokens`: one per token plus a blank between repeated tokens.

    :param tokens: Token ids of one target.
    :return: The number of frames; a shorter utterance cannot produce the target (its CTC loss is infinite).
    """
    return len(tokens) + sum(1 for a, b in zip(tokens[:-1], tokens[1:]) if a == b)
