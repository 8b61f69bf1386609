"""
A genetic black-box attack on speech recognizers, in the manner of Alzantot et al. ("Did you hear that?", 2018) and
Taori et al. ("Targeted adversarial examples for black box audio systems", 2019): a population of perturbations
within an L-infinity budget evolves by elitism, crossover and mutation, scored by the recognizer's transcripts only
(character error rate toward a target phrase, or away from the reference). Every transcription of a candidate is a
query, and each utterance stops at its query budget.

| Paper link: https://arxiv.org/abs/1801.00554
| Paper link: https://arxiv.org/abs/1805.07820
"""

from typing import List, Optional

import jiwer
import numpy as np
from art.attacks.attack import EvasionAttack
from art.estimators.estimator import BaseEstimator

from art_asr_ext.utils.audio import check_waveforms, to_object_array


def character_error_rate(reference: str, hypothesis: str) -> float:
    """
    :param reference: The text scored against (not empty).
    :param hypothesis: A transcript.
    :return: Character edit operations over the reference's characters (jiwer).
    """
    return float(jiwer.cer(reference, hypothesis)) if hypothesis else 1.0


def within_budget(waveform: np.ndarray, candidate: np.ndarray, eps: float) -> np.ndarray:
    """
    :param waveform: The clean waveform.
    :param candidate: A candidate within `eps` of it in float64.
    :return: The candidate in the waveform's dtype, each sample whose rounding left the budget moved one step of that
             dtype back toward the clean sample, so the L-infinity budget holds exactly.
    """
    rounded = candidate.astype(waveform.dtype)
    outside = np.abs(rounded.astype(np.float64) - waveform.astype(np.float64)) > eps
    rounded[outside] = np.nextafter(rounded[outside], waveform[outside])
    return rounded


class GeneticASRAttack(EvasionAttack):
    """
    Evolve perturbations of each utterance with only `predict`: fitness is minus the character error rate toward
    the target (targeted) or the character error rate against the reference (untargeted). Each generation keeps its
    `elite` best, then breeds the rest from parents drawn in proportion to a softmax of their fitness, by uniform
    crossover and a mutation of each sample with probability `mutation_rate` (uniform noise of `mutation_scale`
    times `eps`), clipped to the budget. An utterance stops when it succeeds (targeted: the transcript is the
    target; untargeted: its character error rate reaches `untargeted_success`) or when it has spent `max_queries`.
    The queries spent on each utterance of the last `generate` are in :attr:`queries`.

    | Paper link: https://arxiv.org/abs/1805.07820
    """

    attack_params = EvasionAttack.attack_params + [
        "eps",
        "population",
        "elite",
        "mutation_rate",
        "mutation_scale",
        "max_queries",
        "targeted",
        "untargeted_success",
        "temperature",
        "seed",
    ]
    _estimator_requirements = (BaseEstimator,)

    def __init__(
        self,
        estimator,
        eps: float = 0.01,
        population: int = 10,
        elite: int = 2,
        mutation_rate: float = 0.005,
        mutation_scale: float = 0.5,
        max_queries: int = 1000,
        targeted: bool = True,
        untargeted_success: float = 0.5,
        temperature: float = 0.05,
        seed: int = 0,
    ) -> None:
        """
        :param estimator: A speech recognizer; only its `predict` is called.
        :param eps: The L-infinity budget of every perturbation.
        :param population: Candidates per generation (>= 2).
        :param elite: The best candidates kept unchanged into the next generation (1 to population - 1).
        :param mutation_rate: Probability that a sample of a child mutates.
        :param mutation_scale: A mutation adds uniform noise of this times `eps`.
        :param max_queries: Transcriptions per utterance at most (>= 1).
        :param targeted: Toward the target phrases given as `y`, or away from the references given as `y`.
        :param untargeted_success: Character error rate at which an untargeted attack stops.
        :param temperature: Softmax temperature of parent selection (in units of character error rate).
        :param seed: Seed of the evolution: the same seed and inputs give the same outputs.
        """
        super().__init__(estimator=estimator)
        self.eps = eps
        self.population = population
        self.elite = elite
        self.mutation_rate = mutation_rate
        self.mutation_scale = mutation_scale
        self.max_queries = max_queries
        self._targeted = targeted
        self.untargeted_success = untargeted_success
        self.temperature = temperature
        self.seed = seed
        self._check_params()
        #: Queries spent on each utterance of the last `generate`.
        self.queries: List[int] = []

    @property
    def targeted(self) -> bool:
        return self._targeted

    def _check_params(self) -> None:
        def integer(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}. Found: {value!r}")

        def positive(name: str, maximum: Optional[float] = None) -> None:
            value = getattr(self, name)
            bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value)
            if bad or value <= 0 or (maximum is not None and value > maximum):
                bound = f" and <= {maximum}" if maximum is not None else ""
                raise ValueError(f"{name} must be a number > 0{bound}. Found: {value!r}")

        integer("population", 2)
        integer("max_queries", 1)
        integer("seed", 0)
        if isinstance(self.elite, bool) or not isinstance(self.elite, (int, np.integer)):
            raise ValueError(f"elite must be an integer from 1 to population - 1. Found: {self.elite!r}")
        if not 1 <= self.elite < self.population:
            raise ValueError(
                f"elite must be an integer from 1 to population - 1 ({self.population - 1}). Found: {self.elite}"
            )
        positive("eps")
        positive("mutation_rate", 1.0)
        positive("mutation_scale")
        positive("untargeted_success")
        positive("temperature")

    def generate(self, x: np.ndarray, y: Optional[np.ndarray] = None, **kwargs) -> np.ndarray:
        """
        :param x: Waveforms: an object array of 1-D float arrays, or a 2-D float array.
        :param y: One text per utterance: the target phrases (targeted) or the references (untargeted).
        :return: The best candidate of each utterance, within `eps` of it and the estimator's `clip_values`.
        :raises ValueError: Without one text per utterance.
        """
        waveforms = check_waveforms(x)
        if y is None or len(y) != len(waveforms):
            raise ValueError(
                f"y must give one text per utterance ({len(waveforms)}). Found: {None if y is None else len(y)}"
            )
        rng = np.random.default_rng(self.seed)
        self.queries = [0] * len(waveforms)
        adversarial = [self._evolve(i, w, str(text), rng) for i, (w, text) in enumerate(zip(waveforms, y))]
        if isinstance(x, np.ndarray) and x.dtype != object:
            return np.stack(adversarial).astype(x.dtype)
        return to_object_array(adversarial)

    def _fitness(self, text: str, transcripts: List[str]) -> np.ndarray:
        rates = np.array([character_error_rate(text, t) for t in transcripts])
        return -rates if self.targeted else rates

    def _succeeded(self, text: str, transcript: str, fitness: float) -> bool:
        return transcript == text if self.targeted else fitness >= self.untargeted_success

    def _evolve(self, index: int, waveform: np.ndarray, text: str, rng: np.random.Generator) -> np.ndarray:
        low, high = self.estimator.clip_values if self.estimator.clip_values is not None else (-np.inf, np.inf)
        clean = waveform.astype(np.float64)

        def candidates(deltas: np.ndarray) -> List[np.ndarray]:
            return [within_budget(waveform, np.clip(clean + d, low, high), self.eps) for d in deltas]

        deltas = rng.uniform(-self.eps, self.eps, size=(self.population, len(waveform)))
        best, best_fitness = waveform, -np.inf
        while self.queries[index] < self.max_queries:
            count = min(self.population, self.max_queries - self.queries[index])
            members = candidates(deltas[:count])
            transcripts = [str(t) for t in self.estimator.predict(to_object_array(members), batch_size=count)]
            self.queries[index] += count
            fitness = self._fitness(text, transcripts)
            order = np.argsort(-fitness, kind="stable")
            if fitness[order[0]] > best_fitness:
                best, best_fitness = members[order[0]], float(fitness[order[0]])
            if self._succeeded(text, transcripts[order[0]], float(fitness[order[0]])) or count < self.population:
                break
            deltas = self._next_generation(deltas[order], fitness[order], rng)
        return best

    def _next_generation(self, ranked: np.ndarray, fitness: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The elite, then children of parents drawn by a softmax of their fitness, crossed and mutated."""
        weights = np.exp((fitness - fitness.max()) / self.temperature)
        weights /= weights.sum()
        children = self.population - self.elite
        mothers = ranked[rng.choice(len(ranked), size=children, p=weights)]
        fathers = ranked[rng.choice(len(ranked), size=children, p=weights)]
        offspring = np.where(rng.random(mothers.shape) < 0.5, mothers, fathers)
        mutate = rng.random(offspring.shape) < self.mutation_rate
        offspring = offspring + mutate * rng.uniform(-1, 1, size=offspring.shape) * self.mutation_scale * self.eps
        return np.concatenate([ranked[: self.elite], np.clip(offspring, -self.eps, self.eps)])
