"""
Over-the-air PGD on the real clips: ART's PGD through simulated training rooms (EOT), evaluated in test rooms.
"""

import numpy as np
import pytest
from art.attacks.evasion import ProjectedGradientDescent

from art_asr_ext.attacks.evasion import OverTheAirAttack
from art_asr_ext.attacks.evasion.over_the_air import play_in_rooms
from art_asr_ext.benchmark.presets import MODELS_DIR
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
from art_asr_ext.preprocessing.audio import RoomSet, RoomSimulationPyTorch
from art_asr_ext.utils.audio import to_object_array


@pytest.fixture(scope="module")
def rooms():
    return RoomSet.generate(seed=0, train_rooms=2, test_rooms=2)


@pytest.fixture(scope="module")
def recognizer():
    return PyTorchDeepSpeech2(checkpoint=MODELS_DIR / "deepspeech2_baseline" / "model.ckpt")


def _pgd(estimator):
    return ProjectedGradientDescent(estimator, eps=0.01, eps_step=0.002, max_iter=2, targeted=True, batch_size=2)


def test_the_attack_sees_training_rooms_and_the_evaluation_test_rooms(recognizer, rooms, real_clips):
    clips = to_object_array(real_clips[:2])
    targets = np.array(["OPEN THE DOOR", "GO HOME"])
    attack = OverTheAirAttack(recognizer, _pgd, rooms.train_responses, rooms.test_responses, eot_samples=2, seed=0)
    adversarial = attack.generate(clips, targets)
    for clip, example in zip(clips, adversarial):
        assert example.shape == clip.shape and 0 < np.max(np.abs(example - clip)) <= 0.01 + 1e-6
    assert len(recognizer.preprocessing_operations) == 0  # the recognizer is left as it was
    heard = attack.transcribe(adversarial, batch_size=2)
    assert len(heard) == 2 and all(len(per_room) == 2 for per_room in heard)
    expected = [recognizer.predict(played) for played in play_in_rooms(adversarial, rooms.test_responses)]
    assert heard == [[str(expected[k][i]) for k in range(2)] for i in range(2)]
    # the same seed, the same rooms drawn: the attack is deterministic
    again = OverTheAirAttack(recognizer, _pgd, rooms.train_responses, rooms.test_responses, eot_samples=2, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(adversarial, again.generate(clips, targets)))


def test_room_eot_changes_the_gradient_and_plain_pgd_does_not_see_rooms(recognizer, rooms, real_clips):
    clips = to_object_array(real_clips[:1])
    target = np.array(["OPEN THE DOOR"])
    through_rooms = OverTheAirAttack(recognizer, _pgd, rooms.train_responses, rooms.test_responses, seed=0)
    plain = OverTheAirAttack(recognizer, _pgd, rooms.train_responses, rooms.test_responses, room_eot=False)
    digital = _pgd(recognizer).generate(clips, target)
    assert np.array_equal(plain.generate(clips, target)[0], digital[0])
    assert not np.array_equal(through_rooms.generate(clips, target)[0], digital[0])
    clean = OverTheAirAttack(recognizer, None, [], rooms.test_responses)
    assert clean.generate(clips, target) is clips


def test_the_channel_gradient_is_the_recognizers_gradient_of_the_played_input(recognizer, rooms, real_clips):
    clip = real_clips[0][:16000][None, :]
    one_room = RoomSimulationPyTorch(rooms.train_responses[:1], seed=0)
    chained = recognizer.with_first_defence(one_room)
    gradient = chained.loss_gradient(clip, np.array(["HELLO"]))[0]
    assert gradient.shape == clip[0].shape and np.all(np.isfinite(gradient))
    # the chain rule by hand: the gradient at the played input, correlated with the room's response
    played = play_in_rooms(clip, rooms.train_responses[:1])[0]
    outer = recognizer.loss_gradient(played, np.array(["HELLO"]))[0].astype(np.float64)
    response = rooms.train_responses[0].astype(np.float64)
    by_hand = np.correlate(np.concatenate([outer, np.zeros(len(response))]), response, mode="valid")[: len(outer)]
    np.testing.assert_allclose(gradient, by_hand, rtol=1e-3, atol=1e-4 * np.max(np.abs(by_hand)))
