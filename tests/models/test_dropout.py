import pytest
import torch

from art_asr_ext.models.dropout import FastCPUDropout, keep_mask, use_fast_cpu_dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keeps_each_element_with_probability_one_minus_p_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    count = 4_000_001  # not a multiple of the four elements of one draw
    mask = keep_mask(torch.ones(count), p)
    kept = mask > 0
    # 4 M Bernoulli draws: a standard deviation of 0.00015 at p = 0.1, 0.00025 at 0.5.
    assert float(kept.float().mean()) == pytest.approx(1 - p, abs=0.001)
    for lane in range(4):  # each 16-bit lane of a 64-bit draw alike, the top one included
        assert float(kept[lane::4].float().mean()) == pytest.approx(1 - p, abs=0.002)
    assert float(mask.mean()) == pytest.approx(1.0, abs=0.003)
    assert mask.unique().tolist() == [0.0, pytest.approx(1 / (1 - p), rel=1e-4)]


def test_behaves_as_torch_dropout_outside_cpu_training():
    dropout = FastCPUDropout(0.3)
    x = torch.randn(5, 7)
    assert torch.equal(dropout.eval()(x), x)
    assert torch.equal(FastCPUDropout(0.0).train()(x), x)
    assert torch.equal(FastCPUDropout(1.0).train()(x), torch.zeros_like(x))


def test_is_reproducible_from_the_generator_and_differentiates_through_the_mask():
    dropout = FastCPUDropout(0.2).train()
    x = torch.randn(3, 50, 40, requires_grad=True)
    torch.manual_seed(7)
    first = dropout(x)
    torch.manual_seed(7)
    second = dropout(x)
    assert torch.equal(first, second)
    assert not torch.equal(first, dropout(x))  # a fresh draw
    first.sum().backward()
    # Zero where dropped, the scale where kept.
    assert torch.allclose(x.grad, torch.where(first == 0, 0.0, 1 / (1 - 0.2)), rtol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert dropout(x.bfloat16()).dtype == torch.bfloat16


def test_replaces_every_dropout_of_a_model_and_keeps_its_state_dict():
    model = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1)
    state = model.state_dict()
    assert use_fast_cpu_dropout(model) == 3
    assert [type(m) for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [FastCPUDropout] * 3
    assert model.dropout.p == 0.1
    assert model.state_dict().keys() == state.keys()
    assert use_fast_cpu_dropout(model) == 0
