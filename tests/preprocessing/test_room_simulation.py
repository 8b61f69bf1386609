"""
Rooms as a random, differentiable channel (pyroomacoustics' shoe boxes in Qin et al.'s ranges), on the real clips.
"""

import numpy as np
import pytest
import torch

from art_asr_ext.preprocessing.audio import Room, RoomSet, RoomSimulationPyTorch, convolve_room, room_impulse_response
from art_asr_ext.preprocessing.audio.room_simulation import draw_rooms

SMALL = Room((3.2, 4.1, 2.4), 0.2, (1.0, 1.0, 1.2), (2.2, 3.0, 1.4))


@pytest.fixture(scope="module")
def rooms():
    return RoomSet.generate(seed=0, train_rooms=3, test_rooms=2)


def _schroeder_db(response: np.ndarray) -> np.ndarray:
    energy = np.cumsum((response.astype(np.float64) ** 2)[::-1])[::-1]
    return 10 * np.log10(energy / energy[0] + 1e-300)


def test_a_room_response_is_causal_finite_and_shows_its_rooms_decay():
    import pyroomacoustics

    response = room_impulse_response(SMALL)
    assert response.dtype == np.float32 and np.all(np.isfinite(response))
    assert np.linalg.norm(response) == pytest.approx(1.0, rel=1e-5)
    # causal: nothing arrives before the direct path, less the 40-sample fractional-delay filter
    direct = int(SMALL.direct_delay * 16000)
    assert np.sum(response[: direct + 40 - 41].astype(np.float64) ** 2) < 1e-6
    assert np.argmax(np.abs(response)) >= direct
    # the decay: the energy left falls steadily, and the measured reverberation time is the room's (Sabine's
    # estimate, within the factor of 2 that separates it from the image-source method)
    decay = _schroeder_db(response)
    assert np.all(np.diff(decay) <= 1e-9) and decay[len(decay) // 2] < -20
    rt60 = pyroomacoustics.experimental.measure_rt60(response, fs=16000)
    assert 0.5 * SMALL.sabine_rt60 < rt60 < 2.0 * SMALL.sabine_rt60
    deader = room_impulse_response(Room(SMALL.dimensions, 0.6, SMALL.source, SMALL.microphone))
    assert pyroomacoustics.experimental.measure_rt60(deader, fs=16000) < 0.6 * rt60  # more absorption, faster decay


def test_convolving_with_a_unit_impulse_is_the_identity(real_clips):
    clip = torch.from_numpy(real_clips[0])
    impulse = torch.zeros(400)
    impulse[0] = 1.0
    assert torch.allclose(convolve_room(clip, impulse), clip, atol=1e-6)
    channel = RoomSimulationPyTorch([impulse.numpy()], seed=0)
    assert torch.allclose(channel.forward(clip)[0], clip, atol=1e-6)


def test_gradients_through_the_room_channel_match_a_finite_difference_in_double_precision(real_clips, rooms):
    response = torch.from_numpy(rooms.train_responses[0].astype(np.float64))
    x = torch.from_numpy(real_clips[1][:6000].astype(np.float64)).requires_grad_(True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (convolve_room(x, response) * weights).sum().backward()
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    step = 1e-6
    with torch.no_grad():
        plus = (convolve_room(x + step * direction, response) * weights).sum()
        minus = (convolve_room(x - step * direction, response) * weights).sum()
    assert torch.isclose((plus - minus) / (2 * step), (x.grad * direction).sum(), rtol=1e-7)
    assert torch.isfinite(x.grad).all() and x.grad.shape == x.shape


def test_training_and_test_rooms_are_disjoint_under_one_seed_and_identical_across_runs(rooms, tmp_path):
    again = RoomSet.generate(seed=0, train_rooms=3, test_rooms=2)
    assert again.parameters() == rooms.parameters()
    assert all(np.array_equal(a, b) for a, b in zip(again.test_responses, rooms.test_responses))
    assert not set(rooms.train) & set(rooms.test)
    assert RoomSet.generate(seed=1, train_rooms=3, test_rooms=2).parameters() != rooms.parameters()
    for room in rooms.train + rooms.test:  # Qin et al.'s ranges
        assert 3 <= room.dimensions[0] <= 5 and 4 <= room.dimensions[1] <= 6 and 2 <= room.dimensions[2] <= 4
        assert room.absorption == 0.2
    # cached with a run: written once (responses and parameters), then read back instead of simulated again
    first = RoomSet.cached(tmp_path, 0, 3, 2)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npz")
    second = RoomSet.cached(tmp_path, 0, 3, 2)
    assert second.parameters() == first.parameters() == rooms.parameters()
    assert all(np.array_equal(a, b) for a, b in zip(second.train_responses, rooms.train_responses))


def test_the_channel_draws_rooms_from_its_seed(real_clips, rooms):
    clip = torch.from_numpy(real_clips[0])
    first, second = (RoomSimulationPyTorch(rooms.train_responses, seed=3).forward(clip)[0] for _ in range(2))
    assert torch.equal(first, second)
    channel = RoomSimulationPyTorch(rooms.train_responses, seed=3)
    outputs = [channel.forward(clip)[0] for _ in range(8)]
    assert len({tuple(o[:2000:50].tolist()) for o in outputs}) > 1  # different rooms over the draws


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda: draw_rooms(1, np.random.default_rng(0), {"length": (0.0, 4.0), "width": (4, 6), "height": (2, 4)}),
            "room length must be a range 0 < low",
        ),
        (
            lambda: draw_rooms(1, np.random.default_rng(0), {"length": (3, 5), "width": (-1.0, 6), "height": (2, 4)}),
            "room width must be a range 0 < low",
        ),
        (
            lambda: draw_rooms(1, np.random.default_rng(0), absorption=0.0),
            r"absorption must be in \(0, 1\]. Found: 0.0",
        ),
        (
            lambda: draw_rooms(1, np.random.default_rng(0), absorption=1.5),
            r"absorption must be in \(0, 1\]. Found: 1.5",
        ),
        (lambda: RoomSet.generate(0, 0, 2), "train_rooms must be an integer >= 1. Found: 0"),
        (lambda: RoomSimulationPyTorch([]), "at least one impulse response"),
        (lambda: RoomSimulationPyTorch([np.array([np.nan, 1.0])]), r"responses\[0\] must be a finite 1-D array"),
        (lambda: RoomSimulationPyTorch([np.ones(3)], eot_samples=0), "eot_samples must be an integer >= 1. Found: 0"),
    ],
)
def test_bad_room_settings_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()
