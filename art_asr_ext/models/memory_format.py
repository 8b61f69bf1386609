"""
Channels-last 2-D convolutions, for bf16 training on the CPU.

Under bf16 autocast, oneDNN's CPU convolutions reorder NCHW activations and gradients into their own blocked layout
and back on every pass; in `torch.channels_last` they work in place. For the embedded Transformer, whose `conv2d2`
front end convolves 128 channels at the full 20 ms frame rate, that reordering was a quarter of a training step.
`benchmarks/channels_last_speed.py` measures both layouts, in bf16 and in float32 (where it gains nothing).
"""

import torch


def use_channels_last_convolutions(module: torch.nn.Module) -> int:
    """
    Put the weight of every `torch.nn.Conv2d` inside `module` in `torch.channels_last` memory format, in place. A
    convolution's output then takes that format, and the layers after it follow. The parameters stay the same
    objects with the same values (an optimizer built before keeps them), only their strides change, and a
    `state_dict` saved from the module loads into one in either format.

    :return: How many 2-D convolutions `module` holds (all of them channels-last now).
    """
    convolutions = [child for child in module.modules() if isinstance(child, torch.nn.Conv2d)]
    for convolution in convolutions:
        # Through `.data`, so that the Parameter, which an optimizer may already hold, stays the same object.
        convolution.weight.data = convolution.weight.data.contiguous(memory_format=torch.channels_last)
    return len(convolutions)
