"""
Randomized smoothing with a vote (majority and NIST SCTK's rover) on the real clips of ../shared/data, with the
embedded DeepSpeech2. ROVER is the system binary: without it these tests skip, except in CI (`CI=true`), which must
run them (`.ci/run` installs Debian's sctk).
"""

import os

import numpy as np
import pytest
from art.attacks.evasion import ProjectedGradientDescent

from art_asr_ext.benchmark.presets import MODELS_DIR
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
from art_asr_ext.estimators.speech_recognition.transcript_vote import (
    VoteStability,
    find_rover,
    majority_vote,
    rover_vote,
    vote,
)
from art_asr_ext.estimators.speech_recognition.voting_smoothing import VotingSmoothingMixin, voting_smoothing
from art_asr_ext.utils.audio import to_object_array


def _rover_or_skip() -> str:
    try:
        return find_rover()
    except FileNotFoundError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{error}; CI must run the ROVER tests.")
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def recognizer():
    return PyTorchDeepSpeech2(checkpoint=MODELS_DIR / "deepspeech2_baseline" / "model.ckpt")


@pytest.fixture
def clips(real_clips):
    return to_object_array(real_clips)


#: Five draws whose majority and ROVER differ: the most frequent transcript is "SHUT THE DOOR" (2 of 5), while word
#: by word OPEN (3 of 5), THE (4 of 5) and DOOR (4 of 5) win.
DRAWS = ["SHUT THE DOOR", "OPEN A DOOR", "SHUT THE DOOR", "OPEN THE WINDOW", "OPEN THE DOOR"]


def test_majority_takes_the_most_frequent_transcript_and_the_first_drawn_on_a_tie():
    assert majority_vote(DRAWS) == "SHUT THE DOOR"
    assert majority_vote(["B", "A", "A", "B"]) == "B"
    with pytest.raises(ValueError, match="at least one draw"):
        majority_vote([])


def test_rover_votes_word_by_word_as_computed_by_hand():
    _rover_or_skip()
    assert rover_vote([DRAWS]) == ["OPEN THE DOOR"]
    # an empty draw is ROVER's null word in every slot: two empty draws out of three outvote one word
    assert rover_vote([["OPEN", "", ""], ["", "GO", "GO"]]) == ["", "GO"]
    assert vote([DRAWS, ["A B", "A B", "C B", "A D", "A B"]], "rover") == ["OPEN THE DOOR", "A B"]


def test_rover_keeps_case_and_apostrophes():
    _rover_or_skip()
    assert rover_vote([["Don't go", "Don't go"]]) == ["Don't go"]


def test_a_missing_rover_binary_is_named_with_how_to_install_it():
    with pytest.raises(FileNotFoundError, match=r"rover binary was not found \(looked in /nonexistent/rover\).*sctk"):
        rover_vote([["A", "B"]], rover="/nonexistent/rover")


def test_stability_is_the_share_agreeing_and_the_draws_wer_against_the_vote():
    stability = VoteStability.of(DRAWS, "OPEN THE DOOR")
    assert stability.agreement == pytest.approx(1 / 5)
    # errors against the 3 voted words: 1, 1, 1, 1, 0
    assert stability.draw_wer == pytest.approx(4 / 15)


@pytest.mark.parametrize("method", ["majority", "rover"])
def test_the_vote_of_identical_draws_is_each_draw(recognizer, clips, method):
    if method == "rover":
        _rover_or_skip()
    alone = recognizer.predict(clips)
    voting = voting_smoothing(recognizer, sigma=0.0, draws=4, vote=method, seed=0)
    voted = list(voting.predict(clips))
    if method == "rover":  # ROVER votes words: the draws' spacing (DeepSpeech2 may emit a leading space) is not kept
        alone = [" ".join(text.split()) for text in alone]
    assert voted == list(alone)
    assert [(s.agreement, s.draw_wer) for s in voting.last_vote_stability] == [(1.0, 0.0)] * len(clips)


@pytest.mark.parametrize("method", ["majority", "rover"])
def test_the_vote_is_deterministic_under_a_seed(recognizer, clips, method):
    if method == "rover":
        _rover_or_skip()
    votes = [
        voting_smoothing(recognizer, sigma=0.01, draws=4, vote=method, seed=seed).predict(clips) for seed in (0, 0, 1)
    ]
    assert list(votes[0]) == list(votes[1])
    assert list(votes[0]) != list(votes[2])  # the noise matters: another seed, other draws


def test_the_wrapped_recognizer_is_left_as_it_was(recognizer, clips):
    before = recognizer.predict(clips)
    voting = voting_smoothing(recognizer, sigma=0.01, draws=2, seed=0)
    assert isinstance(voting, PyTorchDeepSpeech2) and isinstance(voting, VotingSmoothingMixin)
    assert len(recognizer.preprocessing_operations) == 0 and len(voting.preprocessing_operations) == 1
    assert not isinstance(recognizer, VotingSmoothingMixin) and recognizer.last_vote_stability is None
    assert list(recognizer.predict(clips)) == list(before)


def test_the_gradient_averages_eot_draws_and_arts_pgd_runs_unchanged(recognizer, clips):
    targets = np.array(["HELLO", "OPEN THE DOOR", "GO"])
    one = voting_smoothing(recognizer, sigma=0.01, draws=2, eot_samples=1, seed=0).loss_gradient(clips, targets)
    voting = voting_smoothing(recognizer, sigma=0.01, draws=2, eot_samples=4, seed=0)
    four = voting.loss_gradient(clips, targets)
    for g1, g4, clip in zip(one, four, clips):
        assert g4.shape == clip.shape and np.all(np.isfinite(g4))
        assert not np.allclose(g1, g4)  # four draws averaged, not the first one
    attack = ProjectedGradientDescent(voting, eps=0.01, eps_step=0.002, max_iter=2, targeted=True, batch_size=3)
    adversarial = attack.generate(clips, targets)
    for example, clip in zip(adversarial, clips):
        assert example.shape == clip.shape and 0 < np.max(np.abs(example - clip)) <= 0.01 + 1e-6
    assert len(voting.predict(adversarial)) == 3 and len(voting.last_vote_stability) == 3


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(draws=0), "draws must be an integer >= 1. Found: 0"),
        (dict(draws=2.5), "draws must be an integer >= 1. Found: 2.5"),
        (dict(sigma=-0.1), "sigma"),
        (dict(vote="median"), "vote must be one of majority, rover. Found: 'median'"),
        (dict(eot_samples=0), "eot_samples must be >= 1. Found: 0"),
    ],
)
def test_bad_parameters_are_named(recognizer, settings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        voting_smoothing(recognizer, **{"sigma": 0.01, **settings})


def test_only_a_recognizer_that_applies_defences_can_vote(recognizer):
    voting = voting_smoothing(recognizer, sigma=0.01)
    with pytest.raises(ValueError, match="already votes"):
        voting_smoothing(voting, sigma=0.01)
    with pytest.raises(ValueError, match="PyTorch speech recognizers. Found: str"):
        voting_smoothing("model", sigma=0.01)
