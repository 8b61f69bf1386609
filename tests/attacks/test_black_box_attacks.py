"""
Black-box attacks that only call `predict`: Kenansville (SNR budget) and the genetic attack (L-infinity and query
budgets), on the real clips, against the embedded DeepSpeech2 and PocketSphinx.
"""

import numpy as np
import pytest

from art_asr_ext.attacks.evasion import GeneticASRAttack, KenansvilleAttack
from art_asr_ext.benchmark.presets import MODELS_DIR
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
from art_asr_ext.metrics import perturbation_size
from art_asr_ext.utils.audio import to_object_array


class NoGradientDeepSpeech2(PyTorchDeepSpeech2):
    """The embedded DeepSpeech2 whose gradients raise: a black-box attack must never ask for one."""

    def loss_gradient(self, x, y, **kwargs):
        raise AssertionError("a black-box attack called loss_gradient")

    def compute_loss_and_decoded_output(self, *args, **kwargs):
        raise AssertionError("a black-box attack called compute_loss_and_decoded_output")


@pytest.fixture(scope="module")
def recognizer():
    return NoGradientDeepSpeech2(checkpoint=MODELS_DIR / "deepspeech2_baseline" / "model.ckpt")


@pytest.fixture
def clips(real_clips):
    return to_object_array(real_clips)


@pytest.mark.parametrize("snr_db", [20.0, 30.0, 40.0])
def test_kenansville_meets_its_snr_budget_on_each_utterance(recognizer, clips, snr_db):
    attack = KenansvilleAttack(recognizer, snr_db=snr_db)
    adversarial = attack.generate(clips)
    for clip, example in zip(clips, adversarial):
        _, snr = perturbation_size(clip, example)
        assert snr >= snr_db - 0.1
        assert snr < snr_db + 3.0  # it spends the budget: the next bin would cross it
        assert example.shape == clip.shape and example.dtype == clip.dtype
    assert attack.queries == [0, 0, 0]  # the whole budget, no query


def test_kenansville_search_spends_queries_within_its_budget_and_removes_less(recognizer, clips):
    full = KenansvilleAttack(recognizer, snr_db=15.0).generate(clips)
    attack = KenansvilleAttack(recognizer, snr_db=15.0, max_queries=6)
    searched = attack.generate(clips)
    assert all(2 <= q <= 6 for q in attack.queries)
    original = recognizer.predict(clips)
    for clip, a, b, before, after in zip(clips, full, searched, original, recognizer.predict(searched)):
        assert perturbation_size(clip, b)[1] >= perturbation_size(clip, a)[1] - 1e-9  # never more than the budget
        if after != before:
            assert perturbation_size(clip, b)[1] >= 15.0 - 0.1


def test_genetic_attack_stays_within_its_linf_and_query_budgets_and_is_deterministic(recognizer, clips):
    targets = np.array(["OPEN THE DOOR", "HELLO", "GO HOME"])
    runs = []
    for _ in range(2):
        attack = GeneticASRAttack(recognizer, eps=0.005, population=4, elite=1, max_queries=10, seed=3)
        runs.append(attack.generate(clips, targets))
        assert all(q <= 10 for q in attack.queries) and max(attack.queries) == 10
    for clip, first, second in zip(clips, *runs):
        assert np.max(np.abs(first.astype(np.float64) - clip.astype(np.float64))) <= 0.005
        assert np.array_equal(first, second)
        assert first.dtype == clip.dtype and np.max(np.abs(first - clip)) > 0
    other = GeneticASRAttack(recognizer, eps=0.005, population=4, elite=1, max_queries=10, seed=4).generate(
        clips, targets
    )
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], other))


def test_genetic_attack_budget_is_not_a_multiple_of_the_population(recognizer, clips):
    # a target no perturbation of 0.01 reaches: the attack runs until its budget, the last generation cut to fit
    attack = GeneticASRAttack(recognizer, eps=0.01, population=4, elite=2, max_queries=7, seed=0)
    attack.generate(clips[:1], np.array(["ZZZZ QQQQ XXXX"]))
    assert attack.queries == [7]


def test_the_untargeted_genetic_attack_raises_the_character_error_rate(recognizer, real_clips):
    from art_asr_ext.attacks.evasion.genetic import character_error_rate

    clip = to_object_array([real_clips[2]])
    reference = recognizer.predict(clip)
    attack = GeneticASRAttack(recognizer, eps=0.05, population=6, elite=2, max_queries=30, targeted=False, seed=0)
    adversarial = attack.generate(clip, reference)
    assert character_error_rate(str(reference[0]), str(recognizer.predict(adversarial)[0])) > 0


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda e: KenansvilleAttack(e, snr_db=float("inf")), "snr_db must be a finite number of dB. Found: inf"),
        (lambda e: KenansvilleAttack(e, snr_db=float("nan")), "snr_db must be a finite number of dB. Found: nan"),
        (lambda e: KenansvilleAttack(e, max_queries=1), "max_queries must be 0 .* or >= 2 .* Found: 1"),
        (lambda e: GeneticASRAttack(e, max_queries=0), "max_queries must be an integer >= 1. Found: 0"),
        (lambda e: GeneticASRAttack(e, population=1, elite=1), "population must be an integer >= 2. Found: 1"),
        (
            lambda e: GeneticASRAttack(e, population=4, elite=4),
            r"elite must be an integer from 1 to population - 1 \(3\)",
        ),
        (lambda e: GeneticASRAttack(e, eps=0.0), "eps must be a number > 0. Found: 0.0"),
        (lambda e: GeneticASRAttack(e, mutation_rate=2.0), "mutation_rate must be a number > 0 and <= 1.0. Found: 2.0"),
    ],
)
def test_bad_black_box_settings_are_named(recognizer, build, message):
    with pytest.raises(ValueError, match=message):
        build(recognizer)


def test_black_box_attacks_run_against_pocketsphinx(real_clips):
    from art_asr_ext.estimators.speech_recognition import PocketSphinxRecognizer

    recognizer = PocketSphinxRecognizer()
    clip = to_object_array([real_clips[1][:24000]])
    kenansville = KenansvilleAttack(recognizer, snr_db=20.0, max_queries=4)
    example = kenansville.generate(clip)
    assert perturbation_size(clip[0], example[0])[1] >= 19.9 and 2 <= kenansville.queries[0] <= 4
    genetic = GeneticASRAttack(recognizer, eps=0.01, population=3, elite=1, max_queries=6, targeted=False, seed=0)
    example = genetic.generate(clip, recognizer.predict(clip))
    assert genetic.queries == [6] and np.max(np.abs(example[0].astype(np.float64) - clip[0])) <= 0.01
