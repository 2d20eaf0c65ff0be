"""Defining properties of every fusion baseline and HyperFuse block variant."""

import math

import pytest
import torch
from torch.nn import functional as F

from hfcore.block_variants import BLOCKS, BlockI, MixedBlock
from hfcore.blocks import HyperFuse, HyperFuseBlock
from hfcore.fusion import (
    BottleneckTransformer,
    DynamicMLPC,
    FactorizedMultimodal,
    FiLM,
    GradientBlending,
    LowRankFusion,
    MAGGate,
    MFASFusion,
    RefinerFusion,
    TensorFusion,
    blend_weights,
)
from hfcore.fusion.refnet import refiner_loss
from hfcore.models import build_model, count_parameters
from hfcore.training import TensorData, TrainConfig, train

BASELINES = ("lfn", "lmf", "mfm", "gb", "mbt", "mfas", "refnet", "film", "mag", "dynamic_mlp_c")


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 1, 28, 28, generator=g), "audio": torch.randn(n, 1, 112, 112, generator=g)}


def test_tensor_fusion_holds_constant_unimodal_and_pairwise_terms():
    z_p, z_a = torch.tensor([[2.0, 3.0]]), torch.tensor([[5.0, 7.0, 11.0]])
    fused = TensorFusion(2, 3)(z_p, z_a).view(3, 4)
    expected = torch.tensor(
        [[1.0, 5.0, 7.0, 11.0], [2.0, 10.0, 14.0, 22.0], [3.0, 15.0, 21.0, 33.0]]
    )  # [1, 2, 3] outer [1, 5, 7, 11], worked by hand
    assert torch.equal(fused, expected)


def test_lmf_equals_linear_map_of_tensor_fusion():
    torch.manual_seed(0)
    lmf = LowRankFusion(4, 5, out_dim=3, rank=2)
    z_p, z_a = torch.randn(7, 4), torch.randn(7, 5)
    tensor = TensorFusion(4, 5)(z_p, z_a).view(7, 5, 6)
    expected = torch.einsum("bij,ijo->bo", tensor, lmf.full_weight()) + lmf.bias
    torch.testing.assert_close(lmf(z_p, z_a), expected, rtol=1e-5, atol=1e-5)


def test_lmf_full_weight_has_the_given_cp_rank():
    torch.manual_seed(0)
    lmf = LowRankFusion(4, 5, out_dim=1, rank=2)
    matrix = lmf.full_weight()[:, :, 0]  # one output: a (5, 6) matrix of rank <= 2
    assert torch.linalg.matrix_rank(matrix) == 2


def test_lmf_factors_are_registered_and_all_receive_gradients():
    model = build_model("lmf")
    fusion = model.fusion
    registered = {id(p) for p in model.parameters()}
    factors = [fusion.primary_factor, fusion.aux_factor, fusion.rank_weights, fusion.bias]
    assert all(id(p) in registered for p in factors)
    # .to() converts every factor: factors kept in a plain list (MultiBench) would stay behind.
    model.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in (fusion.primary_factor, fusion.aux_factor, fusion.rank_weights))
    model.float()
    x = batch()
    model.forward_batch(x).sum().backward()
    for p in factors:
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_mfm_loss_adds_input_reconstruction():
    torch.manual_seed(0)
    model = build_model("mfm").train()
    x, labels = batch(), torch.arange(6)
    x_p, x_a = model.batch_inputs(x)
    logits = model(x_p, x_a)
    ce = F.cross_entropy(logits, labels)
    recon = model.fusion.reconstruction_loss(x_p, x_a)
    torch.testing.assert_close(model.loss(logits, labels, x_p, x_a), ce + recon)
    # Reconstruction targets: the image as is, the spectrogram pooled 4x4 to 28x28.
    x_p_hat, x_a_hat = model.fusion._cache
    assert x_p_hat.shape == (6, 784)
    assert x_a_hat.shape == (6, 784)
    recon.backward()
    assert model.primary_encoder.layers[0][0].weight.grad.abs().sum() > 0


def test_mfm_factors_read_what_the_method_says():
    torch.manual_seed(0)
    fusion = FactorizedMultimodal(3, 4, (1, 2, 2), (1, 2, 2), factor_dim=5, recon_weight=0.5).train()
    z_p, z_a = torch.randn(2, 3), torch.randn(2, 4)
    f_y = fusion(z_p, z_a)
    assert not torch.allclose(f_y, fusion(z_p, torch.randn(2, 4)))  # F_y reads both modalities
    # Decoder m reads [F_y, F_m], and F_m reads modality m alone.
    p_hat, a_hat = fusion.reconstruct(f_y, z_p, z_a)
    p_hat_other, a_hat_other = fusion.reconstruct(f_y, z_p, torch.randn(2, 4))
    torch.testing.assert_close(p_hat, p_hat_other)
    assert not torch.allclose(a_hat, a_hat_other)
    x_p, x_a = torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2)
    fusion(z_p, z_a)
    loss = fusion.training_loss(torch.tensor(1.0), None, x_p, x_a)
    torch.testing.assert_close(loss, 1.0 + 0.5 * fusion.reconstruction_loss(x_p, x_a))


def test_mfm_reconstruction_loss_perfect_decoder():
    fusion = FactorizedMultimodal(3, 4, (1, 2, 2), (1, 8, 8), recon_size=4)
    x_p, x_a = torch.randn(2, 1, 2, 2), torch.randn(2, 1, 8, 8)
    target_a = F.avg_pool2d(x_a, 2).flatten(1)  # 8x8 pooled to 4x4 by hand
    fusion._cache = (x_p.flatten(1), target_a)
    assert float(fusion.reconstruction_loss(x_p, x_a)) == 0.0


def test_blend_weights_worked_example():
    # Head 1: held-out loss 1.0 -> 0.8 (G = 0.2); gap 0.1 -> 0.3 (O = 0.2): G / O^2 = 5.
    # Head 2: held-out loss 1.0 -> 0.9 (G = 0.1); gap 0.2 -> 0.3 (O = 0.1): G / O^2 = 10.
    # Head 3: held-out loss rose (G < 0): weight 0.
    weights = blend_weights(
        train_before=torch.tensor([0.9, 0.8, 1.0]),
        val_before=torch.tensor([1.0, 1.0, 1.0]),
        train_after=torch.tensor([0.5, 0.6, 0.9]),
        val_after=torch.tensor([0.8, 0.9, 1.1]),
        previous=torch.full((3,), 1 / 3),
    )
    # Normalised: [1/3, 2/3, 0]; with the floor of 0.05 per head, 0.85 * w + 0.05.
    torch.testing.assert_close(weights, torch.tensor([1 / 3, 0.85 * 2 / 3 + 0.05, 0.05]))


def test_blend_weights_keep_previous_when_no_head_generalises():
    previous = torch.tensor([0.5, 0.3, 0.2])
    same = torch.ones(3)
    assert torch.equal(blend_weights(same, same, same, same + 0.1, previous), previous)


def test_blend_weights_floor_the_overfitting_term():
    weights = blend_weights(torch.ones(2), torch.ones(2), torch.tensor([0.9, 0.5]), torch.tensor([0.9, 0.5]),
                            torch.full((2,), 0.5), min_overfit=0.1)
    # O = 0 for both heads, floored at 0.1^2: weights proportional to G = 0.1 and 0.5, so
    # [1/6, 5/6], then 0.9 * w + 0.05.
    torch.testing.assert_close(weights, torch.tensor([0.2, 0.8]))
    unfloored = blend_weights(torch.ones(2), torch.ones(2), torch.tensor([0.9, 0.5]), torch.tensor([0.9, 0.5]),
                              torch.full((2,), 0.5), min_overfit=0.1, min_weight=0.0)
    torch.testing.assert_close(unfloored, torch.tensor([1 / 6, 5 / 6]))
    with pytest.raises(ValueError, match="min_weight must be in"):
        blend_weights(torch.ones(2), torch.ones(2), torch.ones(2), torch.ones(2), torch.full((2,), 0.5),
                      min_weight=0.5)


def test_gradient_blending_loss_weighted_head_sum():
    torch.manual_seed(0)
    model = build_model("gb").train()
    model.fusion.weights.copy_(torch.tensor([0.5, 0.3, 0.2]))
    x, labels = batch(), torch.arange(6)
    x_p, x_a = model.batch_inputs(x)
    logits = model(x_p, x_a)
    z_p, z_a = model.encode(x_p, x_a)
    expected = (0.5 * F.cross_entropy(logits, labels)
                + 0.3 * F.cross_entropy(model.fusion.primary_head(z_p), labels)
                + 0.2 * F.cross_entropy(model.fusion.auxiliary_head(z_a), labels))
    torch.testing.assert_close(model.loss(logits, labels, x_p, x_a), expected)


def test_gradient_blending_weights_update_each_epoch():
    torch.manual_seed(0)
    model = build_model("gb")
    train_data = TensorData(batch(48), torch.arange(48) % 10)
    val_data = TensorData(batch(40, seed=3), torch.arange(40) % 10)
    model.end_epoch(train_data, val_data)  # first estimate: losses recorded, weights unchanged
    torch.testing.assert_close(model.fusion.weights, torch.full((3,), 1 / 3))
    before = model.fusion.last_losses.clone()
    train(model, train_data, val_data, TrainConfig(epochs=1, batch_size=16, seed=0), progress=False)
    after = model.fusion.last_losses
    expected = blend_weights(before[0], before[1], after[0], after[1], torch.full((3,), 1 / 3))
    torch.testing.assert_close(model.fusion.weights, expected)
    assert not torch.allclose(model.fusion.weights, torch.full((3,), 1 / 3))
    assert "fusion.weights" in model.state_dict()
    assert "fusion.last_losses" in model.state_dict()


def test_mbt_streams_exchange_information_only_through_the_bottleneck():
    torch.manual_seed(0)
    mbt = BottleneckTransformer(3, 5, 4, 6, dim=16, num_layers=2, num_heads=2, fusion_layer=0).eval()
    x_p, bottleneck = torch.randn(2, 5, 16), torch.randn(2, 4, 16)
    out_p1, _, b1 = mbt.fusion_step(0, x_p, torch.randn(2, 7, 16), bottleneck)
    out_p2, _, b2 = mbt.fusion_step(0, x_p, torch.randn(2, 7, 16), bottleneck)
    torch.testing.assert_close(out_p1, out_p2)  # primary tokens do not see the auxiliary ones
    assert not torch.allclose(b1, b2)  # the bottleneck does


def test_mbt_streams_apart_before_fusion_layer():
    torch.manual_seed(0)
    mbt = BottleneckTransformer(3, 5, 4, 6, dim=16, num_layers=2, num_heads=2, fusion_layer=1).eval()
    seen = []
    mbt.primary_layers[1].register_forward_hook(lambda module, args, output: seen.append(args[0][:, :5]))
    taps_p = [torch.randn(2, 3, 2, 2)]
    mbt(taps_p, [torch.randn(2, 5, 2, 3)])
    mbt(taps_p, [torch.randn(2, 5, 2, 3)])
    torch.testing.assert_close(seen[0], seen[1])  # layer 0 ran without the auxiliary stream
    x_p, x_a, bottleneck = torch.randn(2, 5, 16), torch.randn(2, 7, 16), torch.randn(2, 4, 16)
    _, _, updated = mbt.fusion_step(1, x_p, x_a, bottleneck)
    from_p = mbt.primary_layers[1](torch.cat([x_p, bottleneck], 1))[:, 5:]
    from_a = mbt.aux_layers[1](torch.cat([x_a, bottleneck], 1))[:, 7:]
    torch.testing.assert_close(updated, (from_p + from_a) / 2)


def test_mbt_averages_the_logits_of_both_class_tokens():
    torch.manual_seed(0)
    model = build_model("mbt").eval()
    x_p, x_a = model.batch_inputs(batch())
    tokens = model.fusion(*model.encode(x_p, x_a))
    assert tokens.shape == (6, 2, 64)
    expected = (model.head(tokens[:, 0]) + model.head(tokens[:, 1])) / 2
    torch.testing.assert_close(model(x_p, x_a), expected)


def test_mbt_output_depends_on_both_modalities():
    torch.manual_seed(0)
    model = build_model("mbt").eval()
    x = batch()
    other = dict(x, audio=batch(seed=1)["audio"])
    assert not torch.allclose(model.forward_batch(x), model.forward_batch(other))


def test_mfas_tapped_layers():
    model = build_model("mfas")
    assert model.primary_depths == (2, 3)
    assert model.auxiliary_depths == (4, 5)
    assert len(model.primary_encoder.layers) == 3
    assert len(model.auxiliary_encoder.layers) == 5
    channels = [layer[0].in_features for layer in model.fusion.fusion_layers]
    assert channels == [12 + 48, 24 + 96 + 64]  # layer 1: I2 + A4; layer 2: I3 + A5 + layer 1


def test_mfas_fusion_pools_each_tap_globally():
    fusion = MFASFusion([2], [3], hidden_dim=4)
    taps_p, taps_a = [torch.randn(1, 2, 5, 5)], [torch.randn(1, 3, 2, 2)]
    layer = fusion.fusion_layers[0]
    expected = layer(torch.cat([taps_p[0].mean((2, 3)), taps_a[0].mean((2, 3))], dim=1))
    torch.testing.assert_close(fusion(taps_p, taps_a), expected)


def test_refiner_loss_worked_example():
    # cos([1, 0], [1, 0]) = 1 and cos([1, 1], [1, 0]) = 1 / sqrt(2).
    reconstructions = [torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])]
    targets = [torch.tensor([[2.0, 0.0]]), torch.tensor([[3.0, 0.0]])]
    torch.testing.assert_close(refiner_loss(reconstructions, targets), torch.tensor((1 - 2**-0.5) / 2))


def test_refnet_refiner_targets_are_detached():
    torch.manual_seed(0)
    fusion = RefinerFusion(3, 4, fused_dim=5).train()
    z_p, z_a = torch.randn(2, 3, requires_grad=True), torch.randn(2, 4)
    fusion(z_p, z_a)
    assert not any(t.requires_grad for t in fusion._cache[1])
    grad = torch.autograd.grad(fusion.training_loss(torch.tensor(0.0), None, None, None), z_p)[0]

    def by_hand(targets):
        fused = fusion.fuse(torch.cat([z_p, z_a], 1))
        loss = refiner_loss((fusion.primary_refiner(fused), fusion.aux_refiner(fused)), targets)
        return torch.autograd.grad(loss, z_p)[0]

    torch.testing.assert_close(grad, by_hand((z_p.detach(), z_a)))
    assert not torch.allclose(grad, by_hand((z_p, z_a)))  # the detach changes the gradient


def test_refnet_loss_adds_the_refiner_term():
    torch.manual_seed(0)
    model = build_model("refnet").train()
    x, labels = batch(), torch.arange(6)
    x_p, x_a = model.batch_inputs(x)
    logits = model(x_p, x_a)
    z_p, z_a = model.encode(x_p, x_a)
    fused = model.fusion.fuse(torch.cat([z_p, z_a], 1))
    refine = refiner_loss((model.fusion.primary_refiner(fused), model.fusion.aux_refiner(fused)), (z_p, z_a))
    torch.testing.assert_close(model.loss(logits, labels, x_p, x_a), F.cross_entropy(logits, labels) + refine)


def test_film_identity_start_and_featurewise():
    film = FiLM(4, 3)
    z_p, z_a = torch.randn(5, 4), torch.randn(5, 3)
    torch.testing.assert_close(film(z_p, z_a), z_p)
    torch.manual_seed(0)
    for layer in (film.scale, film.shift):
        torch.nn.init.normal_(layer.weight)
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    mixed = film(0.3 * a + 0.7 * b, z_a)
    torch.testing.assert_close(mixed, 0.3 * film(a, z_a) + 0.7 * film(b, z_a))
    # Feature-wise: output feature i reads input feature i only (a diagonal Jacobian).
    jacobian = torch.autograd.functional.jacobian(lambda x: film(x, z_a[:1]), z_p[:1]).squeeze()
    off_diagonal = jacobian - torch.diag(torch.diagonal(jacobian))
    assert torch.count_nonzero(off_diagonal) == 0
    assert torch.count_nonzero(torch.diagonal(jacobian)) == 4


def test_mag_displacement_is_at_most_beta_times_the_primary_norm():
    torch.manual_seed(0)
    mag = MAGGate(8, 5, beta=0.5)
    torch.nn.init.normal_(mag.shift.weight, std=10.0)  # a large shift, so that the clamp acts
    z_p, z_a = torch.randn(100, 8), torch.randn(100, 5)
    shift = mag.displacement(z_p, z_a).norm(dim=1)
    limit = 0.5 * z_p.norm(dim=1)
    raw = (torch.relu(mag.gate(torch.cat([z_p, z_a], 1))) * mag.shift(z_a)).norm(dim=1)  # H before scaling
    clamped = raw > limit
    assert clamped.sum() > 50  # the case under test occurs
    torch.testing.assert_close(shift[clamped], limit[clamped], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(shift[~clamped], raw[~clamped])


def test_dynamic_mlp_c_weights_depend_on_both_inputs_unlike_hyperfuse():
    torch.manual_seed(0)
    dynamic, hyper = DynamicMLPC(6, 4, hidden_dim=3), HyperFuseBlock(6, 4, 3)
    z_p, z_a = torch.randn(2, 6), torch.randn(2, 4)
    other_p = torch.randn(2, 6)
    assert not torch.allclose(dynamic.generate_weights(z_p, z_a), dynamic.generate_weights(other_p, z_a))
    assert not torch.allclose(dynamic.generate_weights(z_p, z_a), dynamic.generate_weights(z_p, torch.randn(2, 4)))
    # HyperFuse: the generator's output during forward is the same for any primary input.
    generated = []
    hyper.generator.register_forward_hook(lambda module, args, output: generated.append(output))
    out_1, out_2 = hyper(z_p, z_a), hyper(other_p, z_a)
    assert not torch.allclose(out_1, out_2)
    torch.testing.assert_close(generated[0], generated[1])


def test_block_i_applies_the_generated_matrix_to_the_primary_feature():
    torch.manual_seed(0)
    block = BlockI(3, 2)
    z_p, z_a = torch.randn(4, 3), torch.randn(4, 2)
    weights = block.generator(z_a).view(4, 3, 3)
    expected = torch.stack([weights[i].T @ z_p[i] for i in range(4)])
    torch.testing.assert_close(block(z_p, z_a), expected)


def test_block_ii_has_no_residual_and_block_iii_adds_one():
    torch.manual_seed(0)
    block_ii = MixedBlock(5, 3, 4, "II")
    block_iii = MixedBlock(5, 3, 4, "III")
    block_iii.load_state_dict(block_ii.state_dict())
    z_p, z_a = torch.randn(4, 5), torch.randn(4, 3)
    torch.testing.assert_close(block_iii(z_p, z_a), block_ii(z_p, z_a) + z_p)


def test_block_iv_primary_channel_is_purely_primary():
    torch.manual_seed(0)
    z_p, z_a, other_a = torch.randn(4, 5), torch.randn(4, 3), torch.randn(4, 3)
    block_iv, block_iii = MixedBlock(5, 3, 4, "IV"), MixedBlock(5, 3, 4, "III")
    torch.testing.assert_close(block_iv.channels(z_p, z_a)[0], block_iv.channels(z_p, other_a)[0])
    assert not torch.allclose(block_iii.channels(z_p, z_a)[0], block_iii.channels(z_p, other_a)[0])
    # In Blocks II-IV the generated matrix reads both modalities.
    assert not torch.allclose(block_iv.generate_weights(z_p, z_a), block_iv.generate_weights(torch.randn(4, 5), z_a))


@pytest.mark.parametrize("block", BLOCKS)
def test_every_block_variant_builds_and_keeps_the_primary_width(block):
    fusion = HyperFuse(48, 192, 16, block=block, num_blocks=2)
    assert fusion(torch.randn(3, 48), torch.randn(3, 192)).shape == (3, 48)


@pytest.mark.parametrize("block", ["I", "II", "III", "IV"])
def test_variant_models_have_no_extra_final_skip(block):
    torch.manual_seed(0)
    model = build_model("hyperfuse", block=block, hidden_dim=8).eval()
    assert model.fusion.final_skip is False
    z_p, z_a = torch.randn(3, 48), torch.randn(3, 192)
    torch.testing.assert_close(model.fusion(z_p, z_a), model.fusion.blocks[0](z_p, z_a))
    assert build_model("hyperfuse", hidden_dim=8).fusion.final_skip is True


def test_block_variants_reject_generator_options():
    with pytest.raises(ValueError, match="no generator options"):
        HyperFuse(48, 192, 16, block="II", generator="factorized")
    with pytest.raises(ValueError, match="unknown block 'V'"):
        HyperFuse(48, 192, 16, block="V")


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_trains_all_its_parameters(name):
    torch.manual_seed(0)
    model = build_model(name).train()
    x, labels = batch(8), torch.arange(8)
    x_p, x_a = model.batch_inputs(x)
    model.loss(model(x_p, x_a), labels, x_p, x_a).backward()
    without_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert without_grad == []
    assert count_parameters(model) > 0


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_depends_on_both_modalities(name):
    torch.manual_seed(0)
    model = build_model(name)
    for p in model.parameters():  # move FiLM and friends away from their identity initialisation
        p.data.add_(0.05 * torch.randn_like(p))
    model.eval()
    x = batch()
    assert not torch.allclose(model.forward_batch(x), model.forward_batch(dict(x, audio=batch(seed=1)["audio"])))
    assert not torch.allclose(model.forward_batch(x), model.forward_batch(dict(x, image=batch(seed=2)["image"])))


@pytest.mark.parametrize("name", ["lfn", "mfm", "gb", "film", "mbt", "mfas"])
def test_baselines_take_audio_as_primary(name):
    model = build_model(name, primary="audio")
    assert model.modalities == ("audio", "image")
    assert model.forward_batch(batch()).shape == (6, 10)


def test_auxiliary_losses_need_a_training_forward():
    model = build_model("mfm").eval()
    x_p, x_a = model.batch_inputs(batch())
    model(x_p, x_a)
    with pytest.raises(RuntimeError, match="training mode"):
        model.fusion.training_loss(torch.tensor(0.0), torch.arange(6), x_p, x_a)
