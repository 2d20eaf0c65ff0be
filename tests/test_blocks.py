import pytest
import torch

from hfcore.blocks import HyperFuse, HyperFuseBlock, expected_generated_weight_std, generated_weight_std


def make_inputs(batch=5, primary_dim=12, aux_dim=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, primary_dim, generator=generator), torch.randn(batch, aux_dim, generator=generator)


def test_block_keeps_primary_shape():
    torch.manual_seed(0)
    z_p, z_a = make_inputs()
    out = HyperFuseBlock(12, 7, 4)(z_p, z_a)
    assert out.shape == z_p.shape


def test_block_is_identity_when_output_branch_is_zero():
    torch.manual_seed(0)
    block = HyperFuseBlock(12, 7, 4)
    with torch.no_grad():
        block.primary_out_norm.weight.zero_()
        block.primary_out_norm.bias.zero_()
    z_p, z_a = make_inputs()
    torch.testing.assert_close(block(z_p, z_a), z_p)


def test_block_matches_equations_computed_per_sample():
    torch.manual_seed(0)
    block = HyperFuseBlock(12, 7, 4)
    z_p, z_a = make_inputs()
    out = block(z_p, z_a)
    for i in range(len(z_p)):
        a = block.aux_in_norm(block.aux_in(z_a[i]))
        w = block.generator(a).view(4, 4)
        x = block.primary_in_norm(block.primary_in(z_p[i]))
        z_hat = torch.nn.functional.elu(w.T @ x)
        expected = torch.nn.functional.elu(block.primary_out_norm(block.primary_out(z_hat))) + z_p[i]
        torch.testing.assert_close(out[i], expected)


def test_block_output_depends_on_auxiliary_input():
    torch.manual_seed(0)
    block = HyperFuseBlock(12, 7, 4)
    z_p, z_a = make_inputs()
    other = torch.randn_like(z_a)
    assert not torch.allclose(block(z_p, z_a), block(z_p, other), atol=1e-4)


def test_generated_weights_differ_per_sample():
    torch.manual_seed(0)
    block = HyperFuseBlock(12, 7, 4)
    weights = block.generate_weights(make_inputs()[1])
    assert weights.shape == (5, 4, 4)
    assert not torch.allclose(weights[0], weights[1])


def test_gradients_reach_generator_and_auxiliary_projection():
    torch.manual_seed(0)
    block = HyperFuseBlock(12, 7, 4)
    z_p, z_a = make_inputs()
    block(z_p, z_a).pow(2).sum().backward()
    for name in ("generator.weight", "aux_in.weight", "primary_in.weight", "primary_out.weight"):
        grad = dict(block.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("hidden_dim", [8, 32, 128])
@pytest.mark.parametrize("aux_scale", [0.01, 1.0, 100.0])
def test_generated_weight_scale_follows_hyperfan_in(hidden_dim, aux_scale):
    torch.manual_seed(0)
    block = HyperFuseBlock(16, 24, hidden_dim)
    z_a = aux_scale * torch.randn(256, 24)
    std = generated_weight_std(block, z_a)
    assert std == pytest.approx(expected_generated_weight_std(hidden_dim), rel=0.15)


def test_default_init_scale_grows_with_auxiliary_input():
    # Without the auxiliary LayerNorm and the hyperfan-in rule, the scale tracks the input:
    # the reason the block initialises its generator itself.
    torch.manual_seed(0)
    block = HyperFuseBlock(16, 24, 32, aux_norm=False)
    torch.nn.Linear.reset_parameters(block.generator)
    small = generated_weight_std(block, 0.1 * torch.randn(256, 24))
    large = generated_weight_std(block, 100 * torch.randn(256, 24))
    assert large > 20 * small


def test_stack_applies_final_skip():
    torch.manual_seed(0)
    fusion = HyperFuse(12, 7, 4, num_blocks=3)
    z_p, z_a = make_inputs()
    z = z_p
    for block in fusion.blocks:
        z = block(z, z_a)
    torch.testing.assert_close(fusion(z_p, z_a), z + z_p)
    assert len(fusion.blocks) == 3


def test_stack_auxiliary_mlp_transforms_between_blocks():
    torch.manual_seed(0)
    fusion = HyperFuse(12, 7, 4, num_blocks=2, aux_mlp=True, final_skip=False)
    z_p, z_a = make_inputs()
    expected = fusion.blocks[1](fusion.blocks[0](z_p, z_a), fusion.aux_layers[0](z_a))
    torch.testing.assert_close(fusion(z_p, z_a), expected)
    assert len(fusion.aux_layers) == 1


@pytest.mark.parametrize("kwargs", [dict(hidden_dim=0), dict(primary_dim=-1), dict(aux_dim=2.5)])
def test_block_rejects_invalid_sizes(kwargs):
    args = dict(primary_dim=12, aux_dim=7, hidden_dim=4) | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        HyperFuseBlock(**args)


def test_stack_rejects_zero_blocks():
    with pytest.raises(ValueError, match="num_blocks"):
        HyperFuse(12, 7, 4, num_blocks=0)


def test_block_fuses_each_sequence_position():
    torch.manual_seed(0)
    block = HyperFuseBlock(12, 7, 4)
    z_p, z_a = torch.randn(2, 3, 12), torch.randn(2, 3, 7)
    out = block(z_p, z_a)
    assert out.shape == (2, 3, 12)
    torch.testing.assert_close(out[1, 2], block(z_p[1, 2:3], z_a[1, 2:3])[0])


def test_block_rejects_mismatched_leading_dimensions():
    block = HyperFuseBlock(12, 7, 4)
    with pytest.raises(AssertionError, match="leading dimensions"):
        block(torch.randn(2, 3, 12), torch.randn(2, 7))
