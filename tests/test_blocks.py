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


def test_factorized_block_forward_matches_its_generated_matrix():
    # The fast path never forms W; it must equal the block computed with W = U diag(s) V.
    torch.manual_seed(0)
    block = HyperFuseBlock(12, 7, 6, generator="factorized", rank=3)
    z_p, z_a = make_inputs()
    weights = block.generate_weights(z_a)
    out = block(z_p, z_a)
    for i in range(len(z_p)):
        x = block.primary_in_norm(block.primary_in(z_p[i]))
        z_hat = torch.nn.functional.elu(weights[i].T @ x)
        expected = torch.nn.functional.elu(block.primary_out_norm(block.primary_out(z_hat))) + z_p[i]
        torch.testing.assert_close(out[i], expected)


def test_factorized_weights_rank_and_variation():
    torch.manual_seed(0)
    block = HyperFuseBlock(12, 7, 8, generator="factorized", rank=2)
    weights = block.generate_weights(make_inputs()[1])
    assert weights.shape == (5, 8, 8)
    assert set(torch.linalg.matrix_rank(weights).tolist()) == {2}
    assert not torch.allclose(weights[0], weights[1])


@pytest.mark.parametrize("hidden_dim", [8, 32, 128])
def test_factorized_weight_scale_matches_the_full_generator(hidden_dim):
    torch.manual_seed(0)
    block = HyperFuseBlock(16, 24, hidden_dim, generator="factorized")
    std = generated_weight_std(block, 10.0 * torch.randn(512, 24))
    assert std == pytest.approx(expected_generated_weight_std(hidden_dim), rel=0.15)


def forward_flops(block, batch=4):
    from torch.utils.flop_counter import FlopCounterMode

    z_p, z_a = torch.randn(batch, block.primary_dim), torch.randn(batch, block.aux_dim)
    with FlopCounterMode(display=False) as counter:
        block(z_p, z_a)
    return counter.get_total_flops()


def test_generator_cost_scaling_in_h():
    # With primary and auxiliary widths fixed, doubling h at a fixed rank doubles the
    # factorized block's multiply-adds. The full generator's h^3 term makes it nearly 8x.
    full = [forward_flops(HyperFuseBlock(16, 16, h)) for h in (64, 128)]
    factorized = [forward_flops(HyperFuseBlock(16, 16, h, generator="factorized", rank=8)) for h in (64, 128)]
    assert factorized[1] / factorized[0] == pytest.approx(2.0, rel=0.01)
    assert full[1] / full[0] > 7.5
    # Hand count for h=64, r=8, batch 4: g, f, U, V and g' are 16x64, 16x64, 64x8, 8x64 and
    # 64x16 products, H is 64x8; each multiply-add counts 2 FLOPs.
    assert factorized[0] == 2 * 4 * (16 * 64 + 16 * 64 + 64 * 8 + 8 * 64 + 64 * 16 + 64 * 8)


def test_factorized_parameter_count():
    block = HyperFuseBlock(16, 24, 32, generator="factorized", rank=4)
    generator_params = block.generator.weight.numel() + block.generator.bias.numel()
    assert generator_params == 32 * 4 + 4
    assert block.basis_in.shape == (32, 4)
    assert block.basis_out.shape == (4, 32)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"generator": "lowrank"}, "unknown generator 'lowrank'"),
        ({"rank": 4}, "rank applies to generator='factorized' only"),
        ({"generator": "factorized", "rank": 0}, "rank must be a positive integer, got 0"),
    ],
)
def test_invalid_generator_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HyperFuseBlock(12, 7, 4, **kwargs)


def test_stack_passes_generator_to_every_block():
    stack = HyperFuse(12, 7, 8, num_blocks=2, generator="factorized", rank=3)
    assert [block.rank for block in stack.blocks] == [3, 3]
    z_p, z_a = make_inputs()
    assert stack(z_p, z_a).shape == z_p.shape
