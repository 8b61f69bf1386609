"""
Over-the-air attacks (Qin et al., ICML 2019, after Athalye et al.'s expectation over transformation): an attack
computed on the recognizer behind a room channel, so that every gradient step plays the example in a training room
drawn at random, and evaluated by playing the result in test rooms the attacker never saw.

The same wrapper without room EOT is the digital attack evaluated through the same test rooms, which shows what the
room EOT buys; with no attack at all, it measures what the test rooms alone do to the clean speech.

| Paper link: https://arxiv.org/abs/1903.10346
| Paper link: https://arxiv.org/abs/1707.07397
"""

from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.estimator import BaseEstimator

from art_asr_ext.preprocessing.audio.room_simulation import RoomSimulationPyTorch, convolve_room
from art_asr_ext.utils.audio import check_waveforms, to_object_array


def play_in_rooms(x: np.ndarray, responses: Sequence[np.ndarray]) -> List[np.ndarray]:
    """
    :param x: Waveforms: an object array of 1-D float arrays, or a 2-D float array.
    :param responses: Room impulse responses.
    :return: For each room, the waveforms as recorded there (an object array each).
    """
    waveforms = check_waveforms(x)
    played = []
    with torch.no_grad():
        for response in responses:
            kernel = torch.as_tensor(np.asarray(response, dtype=np.float64))
            played.append(
                to_object_array(
                    [
                        convolve_room(torch.from_numpy(w.astype(np.float64)), kernel).numpy().astype(w.dtype)
                        for w in waveforms
                    ]
                )
            )
    return played


class OverTheAirAttack(EvasionAttack):
    """
    An attack made to survive rooms: `attack` (an ART attack built by `build(estimator)`) runs against the recognizer
    with :class:`~art_asr_ext.preprocessing.audio.RoomSimulationPyTorch` over the training rooms first in its chain
    (`eot_samples` rooms per gradient), or against the plain recognizer (`room_eot=False`); :meth:`transcribe` plays
    its examples in every test room.

    | Paper link: https://arxiv.org/abs/1903.10346
    """

    attack_params = EvasionAttack.attack_params + ["room_eot", "eot_samples", "seed"]
    _estimator_requirements = (BaseEstimator,)

    def __init__(
        self,
        estimator,
        build: Optional[Callable[..., EvasionAttack]],
        train_responses: Sequence[np.ndarray],
        test_responses: Sequence[np.ndarray],
        room_eot: bool = True,
        eot_samples: int = 1,
        seed: int = 0,
    ) -> None:
        """
        :param estimator: One of this package's PyTorch speech recognizers.
        :param build: Builds the attack from the recognizer it attacks; None: no attack (the clean speech, played in
                      the test rooms).
        :param train_responses: The training rooms' impulse responses (the attacker's EOT).
        :param test_responses: The test rooms' impulse responses (the evaluation; never seen by the attack).
        :param room_eot: Attack through the training rooms, or the plain recognizer.
        :param eot_samples: Training rooms averaged per gradient.
        :param seed: Seed of the training-room draws.
        """
        super().__init__(estimator=estimator)
        self.build = build
        self.train_responses = list(train_responses)
        self.test_responses = list(test_responses)
        self.room_eot = room_eot
        self.eot_samples = eot_samples
        self.seed = seed
        if not self.test_responses or (room_eot and build is not None and not self.train_responses):
            raise ValueError("An over-the-air attack needs test rooms, and training rooms for its room EOT.")

    def generate(self, x: np.ndarray, y: Optional[np.ndarray] = None, **kwargs) -> np.ndarray:
        """
        :param x: Waveforms.
        :param y: The labels the attack is built for (targets of a targeted attack).
        :return: The attack's examples (the waveforms themselves without an attack).
        """
        if self.build is None:
            return x
        target = self.estimator
        if self.room_eot:
            channel = RoomSimulationPyTorch(self.train_responses, eot_samples=self.eot_samples, seed=self.seed)
            target = self.estimator.with_first_defence(channel)
        return self.build(target).generate(x, y)

    def transcribe(self, x: np.ndarray, batch_size: int = 16) -> List[List[str]]:
        """
        :param x: Waveforms (the attack's examples).
        :param batch_size: Utterances per forward pass.
        :return: For each utterance, its transcript in each test room.
        """
        per_room = [
            self.estimator.predict(played, batch_size=batch_size) for played in play_in_rooms(x, self.test_responses)
        ]
        return [[str(room[i]) for room in per_room] for i in range(len(per_room[0]))]
