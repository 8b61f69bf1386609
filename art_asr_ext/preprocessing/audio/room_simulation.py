"""
Rooms as a random, differentiable channel, for over-the-air attacks (Qin et al., ICML 2019): a waveform played in a
room reaches the microphone convolved with the room's impulse response. The responses come from pyroomacoustics'
shoe-box image-source simulator in Qin et al.'s ranges (3-5 x 4-6 x 2-4 m, absorption 0.2, random source and
microphone positions); two disjoint sets are drawn from one seed: training rooms, which an attacker averages its
gradient over (expectation over transformation), and test rooms, never seen by the attacker, where its examples are
evaluated. The convolution is an FFT convolution in torch, so its gradient is exact.

| Paper link: https://arxiv.org/abs/1903.10346
"""

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

from art_asr_ext.defences.preprocessor.device_following import FollowsEstimatorDevice
from art_asr_ext.utils.audio import split_numpy_batch
from art_asr_ext.utils.audio_torch import check_waveform_tensor

#: Qin et al.'s rooms: length, width and height ranges in metres, and the walls' absorption.
QIN_ROOM_RANGES = {"length": (3.0, 5.0), "width": (4.0, 6.0), "height": (2.0, 4.0)}
QIN_ABSORPTION = 0.2
#: Speed of sound in m/s (pyroomacoustics' own constant at 20 degrees C).
SPEED_OF_SOUND = 343.0
#: Highest reflection order simulated: image sources grow with its cube, and in Qin et al.'s rooms order 30 already
#: carries the decay to Sabine's reverberation time (measured: 0.50 s against Sabine's 0.51 s in a 4 x 5 x 3 m room,
#: in 0.08 s, where inverse_sabine's order 76 takes 2.8 s).
MAX_REFLECTION_ORDER = 30
#: Nearest a source or a microphone comes to a wall, and to each other, in metres.
MIN_CLEARANCE = 0.5


@dataclasses.dataclass(frozen=True)
class Room:
    """One shoe-box room: its size, its walls' absorption, and where the loudspeaker and the microphone are."""

    dimensions: Tuple[float, float, float]
    absorption: float
    source: Tuple[float, float, float]
    microphone: Tuple[float, float, float]

    @property
    def sabine_rt60(self) -> float:
        """Sabine's reverberation time in seconds: 0.161 V / (S a)."""
        length, width, height = self.dimensions
        surface = 2 * (length * width + length * height + width * height)
        return 0.161 * length * width * height / (surface * self.absorption)

    @property
    def direct_delay(self) -> float:
        """Seconds the sound takes along the direct path from the source to the microphone."""
        return float(np.linalg.norm(np.subtract(self.source, self.microphone))) / SPEED_OF_SOUND


def check_room_settings(ranges: Dict[str, Tuple[float, float]], absorption: float) -> None:
    """
    :param ranges: `length`, `width` and `height` as `(low, high)` in metres.
    :param absorption: The walls' energy absorption.
    :raises ValueError: For a dimension <= 0 or an inverted range, too small for the clearances, or an absorption
                        outside (0, 1].
    """
    for name in ("length", "width", "height"):
        low, high = ranges[name]
        if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 or high < low:
            raise ValueError(f"room {name} must be a range 0 < low <= high in metres. Found: {(low, high)!r}")
        if low <= 2 * MIN_CLEARANCE:
            raise ValueError(
                f"room {name} must exceed {2 * MIN_CLEARANCE} m (sources and microphones keep {MIN_CLEARANCE} m "
                f"from the walls). Found: {low!r}"
            )
    if not (isinstance(absorption, (int, float)) and not isinstance(absorption, bool) and 0 < absorption <= 1):
        raise ValueError(f"absorption must be in (0, 1]. Found: {absorption!r}")


def draw_rooms(
    count: int,
    rng: np.random.Generator,
    ranges: Optional[Dict[str, Tuple[float, float]]] = None,
    absorption: float = QIN_ABSORPTION,
) -> List[Room]:
    """
    :param count: Rooms to draw.
    :param rng: The generator they are drawn from.
    :param ranges: `length`, `width`, `height` ranges in metres (default: Qin et al.'s).
    :param absorption: The walls' energy absorption, in (0, 1].
    :return: The rooms; source and microphone at least 0.5 m from the walls and from each other.
    """
    ranges = dict(QIN_ROOM_RANGES if ranges is None else ranges)
    check_room_settings(ranges, absorption)
    rooms = []
    while len(rooms) < count:
        dimensions = tuple(float(rng.uniform(*ranges[name])) for name in ("length", "width", "height"))
        low, high = MIN_CLEARANCE, np.asarray(dimensions) - MIN_CLEARANCE
        source, microphone = (tuple(float(v) for v in rng.uniform(low, high)) for _ in range(2))
        if np.linalg.norm(np.subtract(source, microphone)) >= MIN_CLEARANCE:
            rooms.append(Room(dimensions, float(absorption), source, microphone))
    return rooms


def room_impulse_response(room: Room, sample_rate: int = 16000) -> np.ndarray:
    """
    Simulate a room's impulse response with pyroomacoustics' image-source method, reflections up to the order that
    Sabine's reverberation time needs (`pyroomacoustics.inverse_sabine`, at most :data:`MAX_REFLECTION_ORDER`), made
    causal (see below) and scaled to unit energy (so a played
    waveform keeps its level on average).

    :param room: The room.
    :param sample_rate: Sample rate in Hz.
    :return: The response, float32, starting at the moment the loudspeaker plays (causal: the direct path arrives
             after `room.direct_delay`, less pyroomacoustics' fractional-delay filter of 40 samples).
    """
    try:
        import pyroomacoustics
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "Simulating rooms needs pyroomacoustics: pip install 'art-asr-ext[rooms]' (pyroomacoustics 0.10)."
        ) from error
    from pyroomacoustics.utilities import design_highpass_filter_sos
    from scipy.signal import sosfilt

    _, max_order = pyroomacoustics.inverse_sabine(room.sabine_rt60, list(room.dimensions))
    simulation = pyroomacoustics.ShoeBox(
        list(room.dimensions),
        fs=sample_rate,
        materials=pyroomacoustics.Material(room.absorption),
        max_order=min(int(max_order), MAX_REFLECTION_ORDER),
        air_absorption=False,
    )
    simulation.add_source(list(room.source))
    simulation.add_microphone(list(room.microphone))
    # pyroomacoustics removes the image-source method's DC with a zero-phase high-pass (sosfiltfilt), which puts
    # energy before the direct path; the same filter run forward only keeps the response causal.
    constants = pyroomacoustics.constants
    enabled = constants.get("rir_hpf_enable")
    constants.set("rir_hpf_enable", False)
    try:
        simulation.compute_rir()
    finally:
        constants.set("rir_hpf_enable", enabled)
    high_pass = design_highpass_filter_sos(sample_rate, constants.get("rir_hpf_fc"), **constants.get("rir_hpf_kwargs"))
    response = sosfilt(high_pass, np.asarray(simulation.rir[0][0], dtype=np.float64))
    return (response / np.linalg.norm(response)).astype(np.float32)


@dataclasses.dataclass
class RoomSet:
    """
    Training and test rooms drawn from one seed (disjoint: every room is its own random draw, and the two sets are
    consecutive draws of one generator), with their impulse responses.

    :param seed: The seed of the draw.
    :param train: The training rooms (the attacker's EOT).
    :param test: The test rooms (the evaluation).
    :param sample_rate: Sample rate of the responses in Hz.
    """

    seed: int
    train: List[Room]
    test: List[Room]
    sample_rate: int
    train_responses: List[np.ndarray]
    test_responses: List[np.ndarray]

    @classmethod
    def generate(
        cls,
        seed: int,
        train_rooms: int,
        test_rooms: int,
        sample_rate: int = 16000,
        ranges: Optional[Dict[str, Tuple[float, float]]] = None,
        absorption: float = QIN_ABSORPTION,
    ) -> "RoomSet":
        """
        :param seed: Seed of the rooms.
        :param train_rooms: Number of training rooms (Qin et al.: 1,000).
        :param test_rooms: Number of test rooms.
        :param sample_rate: Sample rate in Hz.
        :param ranges: Room dimension ranges (default: Qin et al.'s).
        :param absorption: The walls' absorption.
        :return: The rooms and their responses.
        :raises ValueError: For counts < 1 or bad room settings.
        """
        for name, count in (("train_rooms", train_rooms), ("test_rooms", test_rooms)):
            if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
                raise ValueError(f"{name} must be an integer >= 1. Found: {count!r}")
        rooms = draw_rooms(train_rooms + test_rooms, np.random.default_rng(seed), ranges, absorption)
        train, test = rooms[:train_rooms], rooms[train_rooms:]
        return cls(
            seed=seed,
            train=train,
            test=test,
            sample_rate=sample_rate,
            train_responses=[room_impulse_response(room, sample_rate) for room in train],
            test_responses=[room_impulse_response(room, sample_rate) for room in test],
        )

    def parameters(self) -> Dict[str, Any]:
        """The rooms' parameters, as recorded with a run (`rooms.json`)."""
        return {
            "seed": self.seed,
            "sample_rate": self.sample_rate,
            "train": [dataclasses.asdict(room) for room in self.train],
            "test": [dataclasses.asdict(room) for room in self.test],
        }

    def digest(self) -> str:
        """A digest of the rooms' parameters (a run's cache file is named by it)."""
        text = json.dumps(self.parameters(), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def save(self, folder: Path) -> Path:
        """
        Write the responses (`rooms-<digest>.npz`, numpy arrays only) and the parameters (`rooms-<digest>.json`).

        :param folder: Where.
        :return: The npz file.
        """
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"rooms-{self.digest()}.npz"
        arrays = {f"train_{i}": r for i, r in enumerate(self.train_responses)}
        arrays.update({f"test_{i}": r for i, r in enumerate(self.test_responses)})
        np.savez(path, **arrays)
        path.with_suffix(".json").write_text(json.dumps(self.parameters(), indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def cached(cls, folder: Optional[Path], seed: int, train_rooms: int, test_rooms: int, sample_rate: int = 16000):
        """
        The room set of these settings, read from `folder` if a run has cached it there (the parameters are drawn
        again, cheaply, and must match the cached file's), else simulated and cached.

        :param folder: The run's cache folder, or None (nothing cached).
        :return: The room set.
        """
        rng = np.random.default_rng(seed)
        rooms = draw_rooms(train_rooms + test_rooms, rng)
        skeleton = cls(seed, rooms[:train_rooms], rooms[train_rooms:], sample_rate, [], [])
        path = None if folder is None else Path(folder) / f"rooms-{skeleton.digest()}.npz"
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as arrays:
                skeleton.train_responses = [arrays[f"train_{i}"] for i in range(train_rooms)]
                skeleton.test_responses = [arrays[f"test_{i}"] for i in range(test_rooms)]
            return skeleton
        generated = cls.generate(seed, train_rooms, test_rooms, sample_rate)
        if folder is not None:
            generated.save(Path(folder))
        return generated


def convolve_room(waveform: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """
    Play waveforms in a room: their FFT convolution with its response, cut to the input's length (the recording
    stops when the playback does).

    :param waveform: `(samples,)` or `(batch, samples)`.
    :param response: `(taps,)`, on the same device and dtype.
    :return: The recorded waveforms, same shape.
    """
    import torchaudio.functional as F

    length = waveform.shape[-1]
    return F.fftconvolve(waveform, response.expand(*waveform.shape[:-1], -1))[..., :length]


class RoomSimulationPyTorch(FollowsEstimatorDevice, PreprocessorPyTorch):
    """
    Play each waveform in a room drawn at random from a set of impulse responses (seeded), as an ART preprocessor.
    In an estimator's chain it is the attacker's channel: every gradient draws a room, and `eot_samples` draws are
    averaged (expectation over transformation, Qin et al.'s training rooms). Its gradient is exact (a convolution).

    | Paper link: https://arxiv.org/abs/1903.10346
    """

    params = ["eot_samples", "seed", "_apply_fit", "_apply_predict"]
    forward_is_differentiable = True

    def __init__(
        self,
        responses: Sequence[np.ndarray],
        eot_samples: int = 1,
        seed: Optional[int] = None,
        apply_fit: bool = False,
        apply_predict: bool = True,
        device_type: Optional[str] = None,
    ) -> None:
        """
        :param responses: The rooms' impulse responses (1-D float arrays), at the estimator's sample rate.
        :param eot_samples: Room draws an estimator averages the model's gradient over.
        :param seed: Seed of the room draws; None seeds from the operating system.
        :param apply_fit: True if applied during fitting/training.
        :param apply_predict: True if applied during predicting.
        :param device_type: `cpu` or `gpu`; None follows the estimator.
        :raises ValueError: Without responses, or with one that is not a finite 1-D array.
        """
        super().__init__(
            device_type=self.resolve_device_type(device_type),
            is_fitted=True,
            apply_fit=apply_fit,
            apply_predict=apply_predict,
        )
        if len(responses) == 0:
            raise ValueError("responses must hold at least one impulse response. Found: 0")
        for index, response in enumerate(responses):
            response = np.asarray(response)
            if response.ndim != 1 or response.size == 0 or not np.all(np.isfinite(response)):
                raise ValueError(f"responses[{index}] must be a finite 1-D array. Found: shape {response.shape}")
        self._responses = [torch.as_tensor(np.asarray(r, dtype=np.float32)) for r in responses]
        self.eot_samples = eot_samples
        self.seed = seed
        if isinstance(eot_samples, bool) or not isinstance(eot_samples, (int, np.integer)) or eot_samples < 1:
            raise ValueError(f"eot_samples must be an integer >= 1. Found: {eot_samples!r}")
        self._generator = self._new_generator()

    def _draw(self) -> int:
        return int(torch.randint(len(self._responses), (1,), generator=self._generator, device=self.device))

    def forward(self, x: torch.Tensor, y: Any = None) -> Tuple[torch.Tensor, Any]:
        """
        :param x: One waveform `(samples,)` or equal-length waveforms `(batch, samples)` (one room per call).
        :param y: Labels; returned unchanged.
        :return: `x` played in a room drawn at random, same shape, and `y`.
        """
        check_waveform_tensor(x)
        response = self._responses[self._draw()].to(device=x.device, dtype=x.dtype)
        return convolve_room(x, response), y

    def __call__(self, x: np.ndarray, y: Any = None) -> Tuple[np.ndarray, Any]:
        waveforms, pack = split_numpy_batch(x)
        with torch.no_grad():
            outputs = [
                self.forward(torch.from_numpy(np.ascontiguousarray(w)).to(self.device))[0].cpu().numpy()
                for w in waveforms
            ]
        return pack(outputs), y

    def estimate_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError("The room channel is differentiated in torch (forward is differentiable).")

    def set_params(self, **kwargs) -> None:
        """Set parameters; a new `seed` restarts the room draws."""
        super().set_params(**kwargs)
        if "seed" in kwargs:
            self._generator = self._new_generator()
