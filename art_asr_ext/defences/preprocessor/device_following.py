"""
One device convention for this package's defences: a defence built without `device_type` runs on the device of the
estimator it is attached to (the estimator moves it there), so that noise is drawn and a vocoder runs where the model
runs, whether or not a GPU is present; a defence built with `device_type` is pinned, and an estimator on another
device refuses it.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from typing import Optional

import torch


class FollowsEstimatorDevice:
    """
    Mixin for an ART `PreprocessorPyTorch` with a seeded noise generator: device resolution (`resolve_device_type`
    before ART's constructor, `follow_device` from the estimator) and the generator itself (`_new_generator`). Its
    `seed` and `eot_samples` are parameters (`set_params`) a caller may reset before each computation, e.g. the
    benchmark's per-cell seed and attack-strength EOT draws.
    """

    _device_pinned: bool = True
    #: Seed of the noise generator (None: drawn from the system's entropy).
    seed: Optional[int] = None
    #: Draws of the defence an estimator's `loss_gradient` averages over (expectation over transformation).
    eot_samples: int = 1

    def resolve_device_type(self, device_type: Optional[str]) -> str:
        """
        :param device_type: `cpu`, `gpu`, or None to follow the estimator (on the CPU until attached to one).
        :return: The device type to hand to ART's constructor.
        """
        self._device_pinned = device_type is not None
        return "cpu" if device_type is None else device_type

    @property
    def device_pinned(self) -> bool:
        """Whether the defence was given its own `device_type` (it then never moves)."""
        return self._device_pinned

    def follow_device(self, device: torch.device) -> None:
        """
        Move an unpinned defence to its estimator's device (an estimator calls this when it is built; the noise
        generator restarts from the seed there).

        :param device: The estimator's torch device.
        :raises ValueError: For a pinned defence on another device.
        """
        device = torch.device(device)
        if self._device.type == device.type:
            return
        if self._device_pinned:
            raise ValueError(
                f"{type(self).__name__} is pinned to {self._device} but its estimator runs on {device}; build the "
                f"defence with device_type={'gpu' if device.type == 'cuda' else 'cpu'!r}, or without device_type so "
                f"that it follows the estimator."
            )
        self._device = device
        self._moved_to(device)

    def _moved_to(self, device: torch.device) -> None:
        """Move the defence's own tensors and modules; the default restarts the noise generator on `device`."""
        self._generator = self._new_generator()

    def _new_generator(self) -> torch.Generator:
        generator = torch.Generator(device=self._device)
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        return generator
