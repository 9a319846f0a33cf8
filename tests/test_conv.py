"""The conv layers written as matmuls compute XLA's convolutions; the modules' two implementations
(`impl="matmul"` and `impl="xla"`) compute the same function and gradients; the study's architecture has
the parameter count and shapes its definition implies; conv programs run under the engine's scan."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aejax.config import model_spec
from aejax.models import count_params, init_params, model_graph
from aejax.nets import conv, conv_matmul
from aejax.nets.conv_matmul import conv2d, conv_transpose2d

DN = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("kernel,stride,size", [(4, 2, 16), (2, 2, 16), (3, 2, 15), (3, 1, 9), (5, 3, 12), (1, 1, 4),
                                               (6, 3, 10), (4, 4, 9), (1, 2, 7)])
def test_conv2d_is_xla_same_convolution(kernel, stride, size):
    x = jax.random.normal(jax.random.key(0), (3, size, size + 1, 5))
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, 5, 7))
    want = jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=DN)
    np.testing.assert_allclose(conv2d(x, w, stride), want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("form", ["gather", "scatter"])
@pytest.mark.parametrize("c_in,c_out", [(2, 9), (9, 2)])
def test_both_forms_of_the_valid_convolution_are_xla_convolutions(form, c_in, c_out):
    """Forced either way, with few and with many channels in, forward and gradients."""
    x = jax.random.normal(jax.random.key(0), (2, 7, 6, c_in))
    w = jax.random.normal(jax.random.key(1), (3, 2, c_in, c_out))
    ours = lambda x, w: conv_matmul.valid_conv(x, w, form)
    ref = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=DN)
    np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-5, atol=1e-4)
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
    for a, b in zip(jax.grad(loss(ours), (0, 1))(x, w), jax.grad(loss(ref), (0, 1))(x, w)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel,stride,span", [(4, 2, 2), (3, 2, 2), (2, 2, 1), (5, 3, 2), (4, 4, 1)])
def test_transposed_blocks_read_the_narrowest_window(kernel, stride, span):
    """Sub-pixel blocks aligned so each reads ceil(k/s) input pixels a side: for 4x4 stride 2, a 2x2 window
    that every one of the 16 taps fills (an unaligned grid would read 3x3, 2.25x the FLOPs)."""
    _, _, taps = conv_matmul._output_blocks(kernel, stride)
    assert len(taps) == stride and all(len(row) == span for row in taps)
    assert sorted(t for row in taps for t in row if t >= 0) == list(range(kernel))


@pytest.mark.parametrize("c_out", [3, 1])
@pytest.mark.parametrize("kernel,stride", [(4, 2), (3, 2), (2, 2), (3, 1), (5, 3), (4, 4), (1, 1)])
def test_conv_transpose2d_is_flax_conv_transpose_with_the_same_kernel(kernel, stride, c_out):
    """The sub-pixel layer is the function of a transposed conv (lhs_dilation) with the same weights:
    checked against lax.conv_transpose and against flax's own nnx.ConvTranspose module."""
    x = jax.random.normal(jax.random.key(0), (2, 6, 5, 4))
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, 4, c_out))
    want = jax.lax.conv_transpose(x, w, (stride, stride), "SAME", dimension_numbers=DN)
    got = conv_transpose2d(x, w, stride)
    assert got.shape == want.shape == (2, 6 * stride, 5 * stride, c_out)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    layer = nnx.ConvTranspose(4, c_out, (kernel, kernel), strides=stride, padding="SAME", use_bias=False,
                              rngs=nnx.Rngs(0))
    layer.kernel[...] = w
    np.testing.assert_allclose(got, layer(x), rtol=1e-5, atol=1e-4)


def test_gradients_match_xla_convolutions():
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    w = jax.random.normal(jax.random.key(1), (4, 4, 3, 6))
    wt = jax.random.normal(jax.random.key(2), (4, 4, 6, 2))
    ours = lambda x, w, wt: jnp.sum(jnp.tanh(conv_transpose2d(jnp.tanh(conv2d(x, w, 2)), wt, 2)) ** 2)
    ref = lambda x, w, wt: jnp.sum(jnp.tanh(jax.lax.conv_transpose(
        jnp.tanh(jax.lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=DN)), wt, (2, 2), "SAME",
        dimension_numbers=DN)) ** 2)
    for a, b in zip(jax.grad(ours, (0, 1, 2))(x, w, wt), jax.grad(ref, (0, 1, 2))(x, w, wt)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernels,strides", [((4, 4, 4, 4), (2, 2, 2, 2)), ((3, 4, 6), (2, 2, 3))])
def test_the_decoder_is_a_stack_of_xla_transposed_convolutions(kernels, strides, monkeypatch):
    """Its layers hand over `SubPixel` blocks where they can (the study decoder's last layer reads them,
    so that path is exercised, and counted); output and gradients are those of XLA's convolutions."""
    channels, image = (8, 16, 16, 8)[:len(kernels)], (4 * int(np.prod(strides)),) * 2 + (1,)
    decoder = conv.ConvDecoder(5, image, channels, kernels, strides, (12,), jax.nn.relu, rngs=nnx.Rngs(0))
    for i, layer in enumerate(decoder.deconvs):  # biases start at zero: random ones test their placement too
        layer.bias[...] = jax.random.normal(jax.random.key(10 + i), layer.bias.shape)
    read_blocks = []
    padded_blocks = conv_matmul.SubPixel.padded_blocks
    monkeypatch.setattr(conv_matmul.SubPixel, "padded_blocks",
                        lambda self, pads: read_blocks.append(padded_blocks(self, pads)) or read_blocks[-1])

    def reference(params, h):
        y = h
        for layer in params["dense"]:
            y = jax.nn.relu(y @ layer["kernel"] + layer["bias"])
        y = y.reshape(-1, *decoder.feature_shape)
        for i, (layer, s) in enumerate(zip(params["deconvs"], reversed(strides))):
            y = jax.lax.conv_transpose(y, layer["kernel"], (s, s), "SAME", dimension_numbers=DN) + layer["bias"]
            y = jax.nn.relu(y) if i < len(strides) - 1 else y
        return y.reshape(len(h), -1)

    graph, params = nnx.split(decoder)
    plain = nnx.to_pure_dict(params)
    plain = {"dense": [plain["dense"][i] for i in range(len(plain["dense"]))],
             "deconvs": [plain["deconvs"][i] for i in range(len(plain["deconvs"]))]}
    h = jax.random.normal(jax.random.key(1), (3, 5))
    loss = lambda y: jnp.sum(jnp.sin(y))
    ours = jax.grad(lambda p, h: loss(nnx.merge(graph, p)(h)), (0, 1))(params, h)
    want = jax.grad(lambda p, h: loss(reference(p, h)), (0, 1))(plain, h)
    np.testing.assert_allclose(nnx.merge(graph, params)(h), reference(plain, h), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours[1], want[1], rtol=1e-4, atol=1e-5)
    ours = nnx.to_pure_dict(ours[0])
    for i in range(len(strides)):
        for name in ("kernel", "bias"):
            np.testing.assert_allclose(ours["deconvs"][i][name], want[0]["deconvs"][i][name], rtol=1e-4, atol=1e-5)
    assert any(blocks is not None for blocks in read_blocks)  # the last layer read its input from blocks


# The modules' two implementations. (image, channels, encoder kernels, strides, dense, decoder kernels)
IMPL_CASES = {
    "study": ((64, 64, 1), (32, 32, 64, 64), (4, 4, 2, 2), (2, 2, 2, 2), (256,), (4, 4, 4, 4)),  # Locatello et al.
    "3x3": ((28, 28, 1), (16, 32), (3, 3), (2, 2), (), (3, 3)),  # model=conv
    "mixed": ((12, 18, 2), (4, 6), (3, 4), (3, 2), (8,), (5, 2)),  # odd kernels, stride 3, a non-square image
}


def _outputs_and_gradients(model, x):
    """model(x), and the gradients of sum(sin(model(x))) with respect to the parameters and to x."""
    graph, params = nnx.split(model)

    def loss(p, x):
        y = nnx.merge(graph, p)(x)
        return jnp.sum(jnp.sin(y)), y

    (_, y), grads = jax.jit(jax.value_and_grad(loss, (0, 1), has_aux=True))(params, x)
    return y, nnx.to_pure_dict(grads[0]), grads[1]


@pytest.mark.parametrize("case", IMPL_CASES)
def test_both_conv_impls_give_the_same_outputs_and_gradients(case):
    """ConvEncoder and ConvDecoder with impl="xla" (XLA's convolutions) compute, on the same parameters,
    the outputs and gradients (parameters and inputs) of impl="matmul" (aejax.nets.conv_matmul)."""
    image, channels, kernels, strides, dense, decoder_kernels = IMPL_CASES[case]
    code, pixels = 5, int(np.prod(image))
    builders = {
        "encoder": lambda impl, seed: conv.ConvEncoder(image, channels, kernels, strides, dense, 2 * code, jax.nn.elu,
                                                       impl=impl, rngs=nnx.Rngs(seed)),
        "decoder": lambda impl, seed: conv.ConvDecoder(code, image, channels, decoder_kernels, strides, dense,
                                                       jax.nn.elu, impl=impl, rngs=nnx.Rngs(seed)),
    }
    inputs = {"encoder": jax.random.uniform(jax.random.key(1), (3, pixels)),
              "decoder": jax.random.normal(jax.random.key(2), (3, code))}
    for part, build in builders.items():
        matmul = build("matmul", 0)
        layers = matmul.convs if part == "encoder" else matmul.deconvs
        for i, layer in enumerate(layers):  # biases start at zero: random ones test their placement too
            layer.bias[...] = 0.1 * jax.random.normal(jax.random.key(10 + i), layer.bias.shape)
        xla = build("xla", 1)  # other parameters, then the matmul model's copied in
        nnx.update(xla, nnx.state(matmul))
        assert nnx.graphdef(matmul) != nnx.graphdef(xla)  # the impl is static, in the graph
        assert [layer.impl for layer in (xla.convs if part == "encoder" else xla.deconvs)] == ["xla"] * len(layers)
        ours, want = _outputs_and_gradients(xla, inputs[part]), _outputs_and_gradients(matmul, inputs[part])
        assert ours[0].shape == want[0].shape == (3, 2 * code if part == "encoder" else pixels)
        np.testing.assert_allclose(ours[0], want[0], rtol=1e-4, atol=1e-4, err_msg=f"{part} output")
        np.testing.assert_allclose(ours[2], want[2], rtol=1e-4, atol=1e-4, err_msg=f"{part} input gradient")
        got, expected = jax.tree.leaves_with_path(ours[1]), jax.tree.leaves_with_path(want[1])
        assert [path for path, _ in got] == [path for path, _ in expected]
        for (path, a), (_, b) in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4,
                                       err_msg=f"{part} gradient {jax.tree_util.keystr(path)}")


def test_the_impl_is_the_modules_own_choice_not_a_global():
    """Each module lowers as its own `impl` says, forward and backward, whatever was traced before: the xla
    encoder and decoder to XLA's convolutions, the matmul ones to no `convolution` op at all; "auto" is a
    setting for `resolve_conv_impl`, not an impl."""
    image, channels, kernels, strides = (8, 8, 1), (2, 3), (4, 3), (2, 2)
    models = {impl: (conv.ConvEncoder(image, channels, kernels, strides, (), 4, jnp.tanh, impl=impl, rngs=nnx.Rngs(0)),
                     conv.ConvDecoder(2, image, channels, kernels, strides, (), jnp.tanh, impl=impl, rngs=nnx.Rngs(0)))
              for impl in ("matmul", "xla")}

    def hlo(impl):  # the gradient of a round trip, lowered
        graph, params = nnx.split(models[impl])

        def loss(p, x):
            encoder, decoder = nnx.merge(graph, p)
            return jnp.sum(decoder(encoder(x)[:, :2]) ** 2)

        return jax.jit(jax.grad(loss, (0, 1))).lower(params, jnp.ones((2, 64))).as_text()

    assert "convolution" not in hlo("matmul")
    assert hlo("xla").count("convolution(") >= 4  # forward convs and transposed convs, and their gradients
    assert "stablehlo.case" in hlo("matmul") and "stablehlo.case" not in hlo("xla")  # `materialized`: matmul only
    assert "convolution" not in hlo("matmul")  # after an xla model was traced
    with pytest.raises(ValueError, match="resolve_conv_impl"):
        conv.ConvEncoder(image, channels, kernels, strides, (), 4, jnp.tanh, impl="auto", rngs=nnx.Rngs(0))


def test_resolve_conv_impl():
    """`auto` is the matmul lowering on a CPU and XLA's convolutions on a GPU or TPU; the others are themselves."""
    assert conv.CONV_IMPLS == ("auto", "matmul", "xla")
    assert conv.resolve_conv_impl("auto", "cpu") == "matmul"
    assert conv.resolve_conv_impl("auto", "gpu") == "xla"
    assert conv.resolve_conv_impl("auto", "tpu") == "xla"
    assert conv.resolve_conv_impl("auto") == ("matmul" if jax.default_backend() == "cpu" else "xla")
    for backend in ("cpu", "gpu", "tpu", None):
        assert conv.resolve_conv_impl("matmul", backend) == "matmul"
        assert conv.resolve_conv_impl("xla", backend) == "xla"
    with pytest.raises(ValueError, match="auto, matmul, xla"):
        conv.resolve_conv_impl("cudnn", "gpu")


STUDY = model_spec(family="vae", architecture="conv", channels=(32, 32, 64, 64), kernel_sizes=(4, 4, 2, 2),
                  strides=(2,), dense=(256,), decoder_kernel_sizes=(4,), code_size=10, init="glorot_uniform")


def test_the_study_architecture_has_the_parameters_its_definition_implies():
    """Locatello et al.'s conv VAE on 64x64x1, counted by hand from disentanglement_lib's layers."""
    conv = lambda k, cin, cout: k * k * cin * cout + cout
    dense = lambda a, b: a * b + b
    encoder = conv(4, 1, 32) + conv(4, 32, 32) + conv(2, 32, 64) + conv(2, 64, 64) + dense(4 * 4 * 64, 256) \
        + dense(256, 2 * 10)
    decoder = dense(10, 256) + dense(256, 1024) + conv(4, 64, 64) + conv(4, 64, 32) + conv(4, 32, 32) + conv(4, 32, 1)
    params = init_params(STUDY, 4096, (64, 64, 1), jax.random.key(0))
    assert count_params(params) == encoder + decoder == 690_517
    model = nnx.merge(model_graph(STUDY, 4096, (64, 64, 1)), params)
    x = jnp.zeros((3, 4096))
    mean, logvar = model.posterior(x)
    assert mean.shape == logvar.shape == (3, 10)
    assert model.decode(mean).shape == (3, 4096)
    shapes = [layer.kernel.shape for layer in model.encoder.convs] + [layer.kernel.shape for layer in model.decoder.deconvs]
    assert shapes == [(4, 4, 1, 32), (4, 4, 32, 32), (2, 2, 32, 64), (2, 2, 64, 64),
                      (4, 4, 64, 64), (4, 4, 64, 32), (4, 4, 32, 32), (4, 4, 32, 1)]
    # Glorot uniform: every kernel inside its limit sqrt(6 / (fan_in + fan_out)).
    k = model.encoder.convs[1].kernel[...]
    assert float(jnp.abs(k).max()) <= np.sqrt(6 / (16 * 32 + 16 * 32)) + 1e-7


def test_conv_programs_have_no_convolution_left_in_their_hlo():
    """The engine's scanned step runs conv models as dots: no `convolution` op reaches XLA (a convolution
    in a loop body is XLA:CPU's slow path), forward and backward, single model and vmapped population."""
    from aejax.models import make_loss

    spec = model_spec(family="vae", architecture="conv", channels=(4, 8), kernel_sizes=(4, 2), dense=(16,),
                     code_size=3)
    graph = model_graph(spec, 256, (16, 16, 1))
    params = jax.vmap(lambda k: init_params(spec, 256, (16, 16, 1), k))(jax.random.split(jax.random.key(0), 2))
    loss = make_loss(spec, graph)
    hp = {k: jnp.ones(2) for k in ("beta", "noise_level", "sparsity_weight", "contractive_weight", "gamma",
                                   "lambda_od", "c_max", "learning_rate", "top_k")}
    grad = jax.vmap(jax.grad(lambda p, x, k, h: loss(p, x, k, h)[0]), in_axes=(0, None, 0, 0))
    hlo = jax.jit(grad).lower(params, jnp.zeros((5, 256)), jax.random.split(jax.random.key(1), 2), hp).as_text()
    assert "dot_general" in hlo
    assert "convolution" not in hlo


def test_every_conv_layer_names_its_compiled_ops_forward_and_backward():
    """scripts/profile_conv_step.py charges each compiled op to a layer by these name scopes."""
    from aejax.models import make_loss

    spec = model_spec(family="vae", architecture="conv", channels=(4, 8), kernel_sizes=(4, 2), dense=(16,),
                     code_size=3)
    graph = model_graph(spec, 256, (16, 16, 1))
    params = init_params(spec, 256, (16, 16, 1), jax.random.key(0))
    loss = make_loss(spec, graph)
    hp = {k: jnp.float32(1) for k in ("beta", "noise_level", "sparsity_weight", "contractive_weight", "gamma",
                                      "lambda_od", "c_max", "learning_rate", "top_k")}
    grad = jax.jit(jax.grad(lambda p, x, k: loss(p, x, k, hp)[0]))
    hlo = grad.lower(params, jnp.zeros((5, 256)), jax.random.key(1)).compile().as_text()
    scopes = set(re.findall(r'op_name="[^"]*?(transpose\(jvp\()?(encoder_conv\d|decoder_deconv\d)', hlo))
    layers = {f"encoder_conv{i}" for i in range(2)} | {f"decoder_deconv{i}" for i in range(2)}
    assert {name for _, name in scopes} == layers
    assert {name for backward, name in scopes if backward} == layers


@pytest.mark.parametrize("unroll", [16, 2])  # 3 members in one call, and in groups of 2 and 1
def test_the_metrics_encoder_gives_each_members_own_codes(unroll, monkeypatch):
    """The metrics encode conv members with XLA's convolutions, several members unrolled in one call:
    each member's means and log-variances are those of its own model (matmul convolutions)."""
    from aejax import disentanglement

    monkeypatch.setattr(disentanglement, "UNROLL", unroll)
    monkeypatch.setattr(disentanglement, "CONV_ROWS_CPU", 16)  # 37 rows: three calls, the last one padded
    calls = []
    xla_conv = jax.lax.conv_general_dilated
    monkeypatch.setattr(jax.lax, "conv_general_dilated", lambda *a, **k: calls.append(1) or xla_conv(*a, **k))
    spec = model_spec(family="vae", architecture="conv", channels=(4, 8), kernel_sizes=(4, 2), strides=(2,),
                     dense=(16,), code_size=3)
    graph = model_graph(spec, 16 * 16, (16, 16, 1))
    params = jax.vmap(lambda k: init_params(spec, 16 * 16, (16, 16, 1), k))(jax.random.split(jax.random.key(0), 3))
    x = np.asarray(jax.random.uniform(jax.random.key(1), (37, 16 * 16)))  # not a whole number of calls
    mean, logvar = disentanglement.population_encoder(spec, graph, params, {}, image_shape=(16, 16, 1))(x)
    assert mean.shape == logvar.shape == (3, 37, 3)
    assert calls, "the metrics encoder did not use XLA's convolutions"
    calls.clear()
    for i in range(3):
        own = nnx.merge(graph, jax.tree.map(lambda a: a[i], params)).posterior(jnp.asarray(x))
        np.testing.assert_allclose(mean[i], own[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(logvar[i], own[1], rtol=1e-4, atol=1e-5)
    assert not calls  # each member's own model: the matmul convolutions
