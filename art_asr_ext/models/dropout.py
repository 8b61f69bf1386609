"""
Dropout with a cheaper random source on the CPU.

`torch.nn.Dropout` draws one Bernoulli number per element from the CPU generator, and on a CPU that draw, not the
multiplication, is what dropout costs: on the attention weights of the embedded Transformer (16 × 4 × 250 × 250) it
takes longer than the attention's own forward and backward pass. `FastCPUDropout` draws 64 random bits per four
elements instead, from the same generator (so `torch.manual_seed` and a saved generator state reproduce it), and
compares 15 of each element's 16 bits with a threshold. `benchmarks/dropout_speed.py` measures both.
"""

import torch

#: Each element's keep decision compares this many random bits with a threshold: `p` is rounded to a multiple of
#: 2**-15 (0.1 becomes 0.100006).
RANDOM_BITS = 15


class FastCPUDropout(torch.nn.Dropout):
    """
    `torch.nn.Dropout` whose keep mask, on the CPU, comes from 15 random bits per element (four elements per 64-bit
    draw of the generator) instead of one Bernoulli draw per element. It keeps an element with probability
    `1 - p_drawn`, `p_drawn` being `p` rounded to a multiple of 2**-15, and scales the kept ones by `1 / (1 - p_drawn)`,
    so the output's expectation is the input. Outside the CPU, outside training, and at `p` of 0 or 1, it is
    `torch.nn.Dropout` itself. It holds no parameters or buffers: a model's `state_dict` is the same with either.
    `inplace` is ignored on the CPU path (the mask multiplies a new tensor).
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or input.device.type != "cpu" or not 0.0 < self.p < 1.0:
            return super().forward(input)
        return input * keep_mask(input, self.p)


def keep_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """
    :param like: The tensor to drop elements of (its shape and dtype).
    :param p: Probability of dropping an element, in (0, 1).
    :return: `1 / (1 - p_drawn)` where an element is kept and 0 where it is dropped, in `like`'s dtype and shape.
    """
    levels = 1 << RANDOM_BITS
    threshold = round(p * levels)
    if threshold == levels:  # p within 2**-16 of 1: every element dropped
        return torch.zeros_like(like)
    count = like.numel()
    # random_() fills an int64 with 63 uniform bits; each of its four 16-bit lanes holds 15 of them below its top bit.
    bits = torch.empty((count + 3) // 4, dtype=torch.int64).random_().view(torch.int16)[:count].view(like.shape)
    kept = torch.bitwise_and(bits, levels - 1) >= threshold
    return kept.to(like.dtype).mul_(levels / (levels - threshold))


def use_fast_cpu_dropout(module: torch.nn.Module) -> int:
    """
    Replace every `torch.nn.Dropout` inside `module` by a `FastCPUDropout` of the same `p`, in place.

    :return: How many were replaced.
    """
    replaced = 0
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Dropout:
                setattr(parent, name, FastCPUDropout(child.p, child.inplace))
                replaced += 1
    return replaced
