"""
Combine the transcripts of several noisy draws of one utterance into one: the most frequent transcript (`majority`),
or NIST SCTK's ROVER (`rover`, Fiscus 1997), which aligns the draws word by word and keeps the most frequent word of
each slot. ROVER is the system binary of SCTK (Debian's `sctk` package), run as is, not a re-implementation.

| Paper link (ROVER): https://doi.org/10.1109/ASRU.1997.659110
| Paper link (voting smoothing for ASR): https://arxiv.org/abs/2112.03000
"""

import collections
import dataclasses
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

from art_asr_ext.metrics import word_errors

#: The ways draws are combined.
VOTES = ("majority", "rover")

#: Where Debian's sctk package puts its binaries (only `sctk`, a dispatcher, is on PATH).
SCTK_BIN = Path("/usr/lib/sctk/bin")

#: ROVER's null word: an empty draw votes for "no word here" in every slot.
_NULL_WORD = "@"


def majority_vote(draws: Sequence[str]) -> str:
    """
    :param draws: The transcripts of one utterance's draws (at least one).
    :return: The most frequent transcript; among equally frequent ones, the one drawn first (so the vote depends only
             on the draws, in order).
    :raises ValueError: Without draws.
    """
    if len(draws) == 0:
        raise ValueError("A vote needs at least one draw. Found: 0")
    counts = collections.Counter(draws)
    best = max(counts.values())
    return next(text for text in draws if counts[text] == best)


def find_rover(rover: Optional[str] = None) -> str:
    """
    :param rover: A path to SCTK's `rover` binary; None: `rover` on PATH, else Debian's `/usr/lib/sctk/bin/rover`.
    :return: The path of the binary.
    :raises FileNotFoundError: If there is none, saying how to install it.
    """
    candidates = [rover] if rover is not None else [shutil.which("rover"), str(SCTK_BIN / "rover")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    looked = rover if rover is not None else f"PATH and {SCTK_BIN}"
    raise FileNotFoundError(
        f"NIST SCTK's rover binary was not found (looked in {looked}). Install SCTK: `apt-get install sctk` on "
        "Debian/Ubuntu, or build it from https://github.com/usnistgov/SCTK and put rover on PATH."
    )


def rover_vote(draws_per_utterance: Sequence[Sequence[str]], rover: Optional[str] = None) -> List[str]:
    """
    Combine each utterance's draws with ROVER, frequency of occurrence only (`-m avgconf -a 1.0`: the draws carry
    no confidence scores), case-sensitive. Draw i goes to the i-th hypothesis file, in CTM, one word per 0.1 s (ROVER
    aligns by words, not times, without `-T`); an empty draw is ROVER's null word `@`. Each utterance gets its own
    rover call: SCTK 2.4.10's rover silently drops every conversation after one where a file holds only `@`.

    :param draws_per_utterance: For each utterance, its draws' transcripts; every utterance has the same number of
                                draws, at least two (rover needs two hypothesis files).
    :param rover: The rover binary (see :func:`find_rover`).
    :return: The voted transcript of each utterance.
    :raises ValueError: For ragged or too few draws.
    :raises FileNotFoundError: If rover is not installed.
    :raises RuntimeError: If rover fails, with its output.
    """
    counts = {len(draws) for draws in draws_per_utterance}
    if len(counts) > 1:
        raise ValueError(f"Every utterance needs the same number of draws. Found: {sorted(counts)}")
    if not draws_per_utterance:
        return []
    (n_draws,) = counts
    if n_draws < 2:
        raise ValueError(f"ROVER combines at least 2 draws. Found: {n_draws}")
    binary = find_rover(rover)
    with tempfile.TemporaryDirectory(prefix="rover-") as folder:
        return [_rover_one(binary, [str(d) for d in draws], Path(folder)) for draws in draws_per_utterance]


def _rover_one(binary: str, draws: Sequence[str], folder: Path) -> str:
    """One utterance's ROVER vote (see :func:`rover_vote`)."""
    if not any(draw.split() for draw in draws):
        return ""
    hypotheses = []
    for index, draw in enumerate(draws):
        path = folder / f"draw{index}.ctm"
        words = draw.split() or [_NULL_WORD]
        path.write_text("".join(f"utt 1 {0.1 * i:.2f} 0.10 {word}\n" for i, word in enumerate(words)), "utf-8")
        hypotheses += ["-h", str(path), "ctm"]
    output = folder / "voted.ctm"
    output.unlink(missing_ok=True)
    command = [binary, *hypotheses, "-o", str(output), "-m", "avgconf", "-a", "1.0", "-c", "0", "-s", "-f", "0"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not output.exists():
        raise RuntimeError(f"rover failed (exit {result.returncode}): {(result.stdout + result.stderr).strip()}")
    words = [line.split()[4] for line in output.read_text(encoding="utf-8").splitlines() if len(line.split()) >= 5]
    return " ".join(word for word in words if word != _NULL_WORD)


def vote(draws_per_utterance: Sequence[Sequence[str]], method: str, rover: Optional[str] = None) -> List[str]:
    """
    :param draws_per_utterance: For each utterance, its draws' transcripts.
    :param method: One of :data:`VOTES`.
    :param rover: The rover binary, for `rover`.
    :return: The voted transcript of each utterance. With one draw, that draw (nothing to vote on).
    :raises ValueError: For an unknown method.
    """
    if method not in VOTES:
        raise ValueError(f"vote must be one of {', '.join(VOTES)}. Found: {method!r}")
    if method == "majority" or all(len(draws) == 1 for draws in draws_per_utterance):
        return [majority_vote(draws) for draws in draws_per_utterance]
    return rover_vote(draws_per_utterance, rover)


@dataclasses.dataclass(frozen=True)
class VoteStability:
    """How much one utterance's draws agree with their vote."""

    #: Share of the draws whose words are the voted ones.
    agreement: float
    #: The draws' mean word error rate against the vote (errors over the vote's words, at least one).
    draw_wer: float

    @classmethod
    def of(cls, draws: Sequence[str], voted: str) -> "VoteStability":
        """
        :param draws: One utterance's draws.
        :param voted: Their vote.
        :return: Its stability.
        """
        words = max(len(voted.split()), 1)
        errors = [word_errors(voted, draw).errors / words for draw in draws]
        return cls(
            agreement=sum(draw.split() == voted.split() for draw in draws) / len(draws),
            draw_wer=sum(errors) / len(errors),
        )
