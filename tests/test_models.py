import pytest
import torch

from hfcore.encoders import LeNetEncoder, audio_encoder, image_encoder
from hfcore.models import build_model, count_parameters, model_names


def batch(n=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=generator), torch.randn(n, 1, 112, 112, generator=generator)


def test_encoder_output_widths():
    assert image_encoder().out_dim == 48
    assert audio_encoder().out_dim == 192
    image, audio = batch()
    assert image_encoder()(image).shape == (3, 48)
    assert audio_encoder()(audio).shape == (3, 192)


def test_encoder_runs_in_two_parts():
    torch.manual_seed(0)
    encoder = audio_encoder().eval()
    _, audio = batch()
    stem = encoder(audio, 0, 2)
    assert stem.shape == (3, *encoder.feature_shape(2)) == (3, 12, 28, 28)
    torch.testing.assert_close(encoder(stem, 2, None), encoder(audio))


def test_layer_orders_agree_at_inference():
    torch.manual_seed(0)
    pool_first = image_encoder(order="conv-pool-bn-relu").eval()
    reference = image_encoder(order="conv-bn-relu-pool").eval()
    for kind in (torch.nn.Conv2d, torch.nn.BatchNorm2d):
        sources = [m for m in pool_first.modules() if isinstance(m, kind)]
        targets = [m for m in reference.modules() if isinstance(m, kind)]
        for source, target in zip(sources, targets):
            target.load_state_dict(source.state_dict())
    with torch.no_grad():
        for module in list(pool_first.modules()) + list(reference.modules()):
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.fill_(0.1)
                module.running_var.fill_(2.0)
                module.weight.fill_(1.5)
    image, _ = batch()
    torch.testing.assert_close(pool_first(image), reference(image))


def test_encoder_rejects_too_many_layers_for_input():
    with pytest.raises(ValueError, match="too small"):
        LeNetEncoder(num_layers=6, input_size=28)


@pytest.mark.parametrize("name", ["image_only", "audio_only", "lf", "hyperfuse"])
def test_every_model_returns_logits(name):
    torch.manual_seed(0)
    model = build_model(name)
    image, audio = batch()
    logits = model.forward_batch({"image": image, "audio": audio})
    assert logits.shape == (3, 10)
    assert count_parameters(model) > 0


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: .*hyperfuse"):
        build_model("transformer")


def test_model_rejects_unknown_option():
    with pytest.raises(ValueError, match="hidden_dim"):
        build_model("lf", hidden_dim=8)


@pytest.mark.parametrize("primary,auxiliary", [("image", "audio"), ("audio", "image")])
def test_hyperfuse_output_depends_on_auxiliary(primary, auxiliary):
    torch.manual_seed(0)
    model = build_model("hyperfuse", primary=primary, hidden_dim=8).eval()
    image, audio = batch()
    inputs = {"image": image, "audio": audio}
    changed = dict(inputs, **{auxiliary: torch.randn_like(inputs[auxiliary])})
    assert model.modalities == (primary, auxiliary)
    assert not torch.allclose(model.forward_batch(inputs), model.forward_batch(changed), atol=1e-5)


@pytest.mark.parametrize("position", [1, 2, 3, 4])
def test_hyperfuse_fusion_position_inside_image_encoder(position):
    torch.manual_seed(0)
    model = build_model("hyperfuse", fusion_position=position, hidden_dim=8).eval()
    image, audio = batch()
    assert model(image, audio).shape == (3, 10)
    expected_position = None if position == 4 else position
    assert model.fusion_position == expected_position
    assert model.fusion.primary_dim == model.primary_encoder.feature_numel(position)


def test_hyperfuse_rejects_position_outside_encoder():
    with pytest.raises(ValueError, match="fusion_position"):
        build_model("hyperfuse", fusion_position=5)


def test_encode_then_fuse_equals_forward():
    torch.manual_seed(0)
    model = build_model("hyperfuse", fusion_position=2, hidden_dim=8).eval()
    image, audio = batch()
    torch.testing.assert_close(model.fuse(*model.encode(image, audio)), model(image, audio))


def test_same_seed_gives_same_initial_weights():
    torch.manual_seed(3)
    first = build_model("hyperfuse")
    torch.manual_seed(3)
    second = build_model("hyperfuse")
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_registry_holds_main_models():
    assert {"image_only", "audio_only", "lf", "hyperfuse"} <= set(model_names())


def test_multimodal_model_requires_auxiliary_input():
    model = build_model("lf")
    with pytest.raises(ValueError, match="auxiliary input"):
        model(batch()[0])


@pytest.mark.parametrize("channels", [6, 48])
def test_layer_output_independent_of_layout(channels):
    # Below NCHW_NORM_BELOW channels the layer runs BatchNorm on a contiguous copy of a
    # channels-last input. The values and the gradients must not depend on the layout.
    from hfcore.encoders import LeNetLayer

    torch.manual_seed(0)
    layer = LeNetLayer(3, channels, 3, "conv-pool-bn-relu")
    x = torch.randn(4, 3, 16, 16)
    x_last = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    x = x.requires_grad_()
    out, out_last = layer(x), layer(x_last)
    assert out_last.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_last, out)
    (grad,) = torch.autograd.grad(out.pow(2).sum(), x)
    (grad_last,) = torch.autograd.grad(out_last.pow(2).sum(), x_last)
    torch.testing.assert_close(grad_last, grad)
