import copy

import pytest
import torch

from art_asr_ext.models.memory_format import use_channels_last_convolutions


def two_convolutions() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, 2), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3), torch.nn.ReLU(), torch.nn.Flatten()
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channels_last_convolutions_compute_the_same_function_and_gradients(dtype):
    plain = two_convolutions()
    converted = copy.deepcopy(plain)
    parameters = list(converted.parameters())
    assert use_channels_last_convolutions(converted) == 2
    assert list(converted.parameters()) == parameters  # the same objects: an optimizer built before keeps them
    assert not converted[2].weight.is_contiguous() and converted[2].weight.is_contiguous(
        memory_format=torch.channels_last
    )
    x = torch.randn(3, 1, 20, 16)
    outputs, gradients = [], []
    for model in (plain, converted):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            output = model(x)
        output.float().square().sum().backward()
        outputs.append(output.float())
        gradients.append(model[2].weight.grad)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    assert torch.allclose(outputs[0], outputs[1], rtol=tolerance, atol=tolerance)
    assert torch.allclose(gradients[0], gradients[1], rtol=tolerance, atol=tolerance * gradients[0].abs().max())


def test_a_state_dict_saved_channels_last_loads_into_the_usual_layout(tmp_path):
    converted = two_convolutions()
    use_channels_last_convolutions(converted)
    torch.save(converted.state_dict(), tmp_path / "weights.pt")
    plain = two_convolutions().apply(lambda m: torch.nn.init.zeros_(m.weight) if hasattr(m, "weight") else None)
    plain.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True))
    assert plain[2].weight.is_contiguous() and torch.equal(plain[2].weight, converted[2].weight)
    assert use_channels_last_convolutions(torch.nn.Linear(2, 2)) == 0
