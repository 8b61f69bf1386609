"""
A mel-conditioned neural vocoder as one differentiable module: waveform -> log-mel (as the vocoder was trained) ->
optional mean/scale normalisation -> generator -> waveform.

The generator is any module mapping `(batch, n_mels, frames)` to `(batch, 1, frames * hop)`: ESPnet's
``HiFiGANGenerator`` (deterministic) or ``ParallelWaveGANGenerator`` (which also takes a Gaussian noise waveform,
so its re-synthesis is random). Checkpoint loaders live in :mod:`art_asr_ext.models.hifigan_loader` and
:mod:`art_asr_ext.models.parallel_wavegan_loader`.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from typing import Optional

import torch

from art_asr_ext.features.mel import LogMelSpectrogram


def _is_espnet_hifigan(generator: torch.nn.Module) -> bool:
    """Whether `generator` has the layout of ESPnet's ``HiFiGANGenerator`` (what the HiFi-GAN loader builds)."""
    names = ("input_conv", "upsamples", "blocks", "output_conv", "num_upsamples", "num_blocks")
    return all(hasattr(generator, name) for name in names)


def hifigan_forward_recomputing_blocks(generator: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
    """
    ESPnet's ``HiFiGANGenerator.forward``, op for op, with each residual block recomputed during the backward pass
    instead of keeping its activations (`torch.utils.checkpoint`). A HiFi-GAN's residual blocks at the output rate
    hold most of its memory (a 6 x 4 s batch kept about 8 GB of activations for one gradient); recomputing them
    keeps one block's at a time, for one more generator forward per backward. The same ops on the same tensors give
    the same output and gradient.

    :param generator: An ESPnet ``HiFiGANGenerator`` (no global conditioning).
    :param features: Log-mel features, shape `(batch, n_mels, frames)`.
    :return: Waveforms, shape `(batch, 1, frames * hop_length)`.
    """
    from torch.utils.checkpoint import checkpoint

    c = generator.input_conv(features)
    for i in range(generator.num_upsamples):
        c = generator.upsamples[i](c)
        cs = 0.0
        for j in range(generator.num_blocks):
            cs += checkpoint(generator.blocks[i * generator.num_blocks + j], c, use_reentrant=False)
        c = cs / generator.num_blocks
    return generator.output_conv(c)


class Vocoder(torch.nn.Module):
    """
    Log-mel analysis followed by neural re-synthesis, differentiable end to end.

    | Paper link: https://arxiv.org/abs/1910.11480
    """

    def __init__(
        self,
        front_end: LogMelSpectrogram,
        generator: torch.nn.Module,
        hop_length: Optional[int] = None,
        sample_rate: Optional[int] = None,
        mean: Optional[torch.Tensor] = None,
        scale: Optional[torch.Tensor] = None,
        noise_input: bool = False,
        output_gain: float = 1.0,
        name: str = "vocoder",
    ) -> None:
        """
        :param front_end: The log-mel features the generator was trained on; its sample rate is the rate the waveform
                          must have on input.
        :param generator: Maps features `(batch, n_mels, frames)` (and, with `noise_input`, noise `(batch, 1, samples)`
                          as second argument) to waveforms `(batch, 1, frames * hop_length)`.
        :param hop_length: Output samples per feature frame (the generator's upsampling factor); defaults to the front
                           end's hop.
        :param sample_rate: Sample rate of the generated waveform; defaults to the front end's rate.
        :param mean: Per-mel-band mean subtracted from the features (ParallelWaveGAN statistics), shape `(n_mels,)`.
        :param scale: Per-mel-band scale dividing the centred features, shape `(n_mels,)`.
        :param noise_input: Whether the generator takes a standard-normal noise waveform (ParallelWaveGAN).
        :param output_gain: The generator's output is divided by this (the training recipe's global gain).
        :param name: Short description for messages and cache keys.
        """
        super().__init__()
        if (mean is None) != (scale is None):
            raise ValueError("mean and scale must be given together (both from the vocoder's statistics file).")
        n_mels = front_end.config.n_mels
        if mean is not None:
            mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
            scale = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
            if mean.shape != (n_mels,) or scale.shape != (n_mels,):
                raise ValueError(
                    f"mean and scale must have {n_mels} values (one per mel band). "
                    f"Found: {tuple(mean.shape)} and {tuple(scale.shape)}"
                )
            if not bool(torch.all(torch.isfinite(mean))) or not bool(torch.all(scale > 0)):
                raise ValueError("mean must be finite and scale must be > 0 in every mel band.")
        if output_gain <= 0:
            raise ValueError(f"output_gain must be > 0. Found: {output_gain}")
        self.front_end = front_end
        self.generator = generator
        self.hop_length = int(front_end.config.hop_length if hop_length is None else hop_length)
        self.sample_rate = int(front_end.config.sample_rate if sample_rate is None else sample_rate)
        self.noise_input = bool(noise_input)
        self.output_gain = float(output_gain)
        self.name = name
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)

    @property
    def feature_rate(self) -> int:
        """Sample rate the input waveform must have (the front end's)."""
        return self.front_end.config.sample_rate

    @property
    def is_random(self) -> bool:
        """Whether re-synthesis draws noise (two calls on the same input differ)."""
        return self.noise_input

    def features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """
        :param waveforms: Equal-length waveforms at :attr:`feature_rate`, shape `(batch, samples)`.
        :return: The (normalised) log-mel features the generator consumes, shape `(batch, n_mels, frames)`.
        """
        features = self.front_end(waveforms)
        if self.mean is not None:
            features = (features - self.mean[:, None].to(features.dtype)) / self.scale[:, None].to(features.dtype)
        return features

    def forward(
        self,
        waveforms: torch.Tensor,
        noise: Optional[torch.Tensor] = None,
        rng: Optional[torch.Generator] = None,
        generator_dtype: Optional[torch.dtype] = None,
    ) -> torch.Tensor:
        """
        :param waveforms: Equal-length waveforms at :attr:`feature_rate`, shape `(batch, samples)`.
        :param noise: For a noise-input generator: the noise, shape `(batch, 1, frames * hop_length)`; drawn from
                      `rng` when not given. Ignored otherwise.
        :param rng: Random generator for the noise (on the waveforms' device).
        :param generator_dtype: Run the generator under autocast to this dtype (`torch.bfloat16`); `None`: in the
                                dtype of its weights. The log-mel analysis always runs in the input's dtype: the log
                                of bf16 mel energies moves the features far more than the generator's rounding does.
        :return: Re-synthesised waveforms at :attr:`sample_rate`, shape `(batch, frames * hop_length)`; with
                 `generator_dtype`, in the features' dtype.
        """
        features = self.features(waveforms)
        # features: (batch, n_mels, frames)
        if generator_dtype is None:
            output = self._generate(features, noise, rng)
        else:
            with torch.autocast(features.device.type, dtype=generator_dtype):
                output = self._generate(features, noise, rng).to(features.dtype)
        if self.output_gain != 1.0:  # in the features' dtype: a bf16 division would round the waveform once more
            output = output / self.output_gain
        return output

    def _generate(
        self, features: torch.Tensor, noise: Optional[torch.Tensor], rng: Optional[torch.Generator]
    ) -> torch.Tensor:
        """The generator's waveforms `(batch, frames * hop_length)` from the features, before the output gain."""
        if self.noise_input:
            shape = (features.shape[0], 1, features.shape[-1] * self.hop_length)
            if noise is None:
                noise = torch.randn(shape, generator=rng, device=features.device, dtype=features.dtype)
            elif tuple(noise.shape) != shape:
                raise ValueError(f"noise must have shape {shape}. Found: {tuple(noise.shape)}")
            output = self.generator(features, noise)
        elif features.requires_grad and torch.is_grad_enabled() and _is_espnet_hifigan(self.generator):
            output = hifigan_forward_recomputing_blocks(self.generator, features)  # a white-box attacker's gradient
        else:
            output = self.generator(features)
        # output: (batch, 1, frames * hop_length)
        return output[:, 0, :]


def tiny_random_hifigan(seed: int) -> "Vocoder":
    """
    The vocoder of a config's `vocoder: {random_init: {seed}}`: a tiny random HiFi-GAN (8 kHz, 8 mel bands, hop 16)
    for smoke runs, the vocoder defence's full pipeline at a fraction of the universal HiFi-GAN's cost. It does not
    reconstruct speech.

    :param seed: Seed of the weights.
    :return: The vocoder, in eval mode.
    """
    from espnet2.gan_tts.hifigan.hifigan import HiFiGANGenerator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = HiFiGANGenerator(
            in_channels=8,
            channels=16,
            upsample_scales=[4, 4],
            upsample_kernel_sizes=[8, 8],
            resblock_kernel_sizes=[3],
            resblock_dilations=[[1, 3]],
            use_weight_norm=False,
        )
    from art_asr_ext.features.mel import LogMelConfig

    front_end = LogMelSpectrogram(
        LogMelConfig.hifigan(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=8, fmax=None)
    )
    return Vocoder(front_end, generator.eval(), name=f"tiny-random-hifigan:{seed}").eval()
