from collections import OrderedDict
from dataclasses import replace

import pytest
import torch

from koopman_nb.preprocess import Preprocessor, prepare_representations, principal_axes, procrustes
from koopman_nb.targets import PRESETS, get_target, load_target_data


def _layers(n=400, widths=(6, 6, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, widths[0], generator=g, dtype=torch.float64)
    out = OrderedDict()
    for i, w in enumerate(widths):
        mix = torch.randn(base.shape[1], w, generator=g, dtype=torch.float64)
        out[f"L{i}"] = torch.relu(base @ mix) + 0.1 * i
    return out


@pytest.fixture(scope="module")
def fitted():
    layers = _layers()
    return Preprocessor().fit(layers), layers


def test_anchor_inverse_exact(fitted):
    pre, layers = fitted
    back = pre.inverse(pre.transform_layer("L2", layers["L2"]))
    assert torch.allclose(back.double(), layers["L2"], atol=1e-4)


def test_rotations_orthogonal(fitted):
    pre, _ = fitted
    for p in pre.layers.values():
        assert torch.allclose(p["rotation"] @ p["rotation"].T, torch.eye(pre.dim, dtype=torch.float64), atol=1e-10)


def test_training_matrix_frobenius_norm(fitted):
    pre, layers = fitted
    for name, a in pre.transform(layers).items():
        assert float(torch.linalg.matrix_norm(a.double())) == pytest.approx(100.0, rel=1e-5)


def test_anchor_rotation_identity(fitted):
    pre, _ = fitted
    assert torch.allclose(pre.layers["L2"]["rotation"], torch.eye(pre.dim, dtype=torch.float64), atol=1e-10)


def test_procrustes_recovers_rotation():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(100, 5, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    assert torch.allclose(procrustes(x @ q, x), q.T, atol=1e-8)


def test_principal_axes_sign_rule():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 4, generator=g, dtype=torch.float64) * torch.tensor([4., 3., 2., 1.], dtype=torch.float64)
    for flipped in (x, -x):
        axes, var = principal_axes(flipped - flipped.mean(0), 4)
        peak = axes.abs().argmax(0)
        assert bool((axes[peak, torch.arange(4)] > 0).all())
        assert bool((var[:-1] >= var[1:]).all())


def test_reduced_dim_projects(fitted):
    _, layers = fitted
    pre = Preprocessor(dim=3).fit(layers)
    assert pre.transform_layer("L0", layers["L0"]).shape == (400, 3)
    assert pre.inverse(torch.zeros(2, 3)).shape == (2, 6)


def test_nan_names_layer(fitted):
    pre, layers = fitted
    bad = layers["L1"].clone()
    bad[3, 2] = float("inf")
    with pytest.raises(ValueError, match="Layer 'L1' contains 1 NaN or infinite"): pre.transform_layer("L1", bad)


def test_shape_mismatch_names_layer(fitted):
    pre, layers = fitted
    with pytest.raises(ValueError, match="Layer 'L0': expected 6 features, got 5"): pre.transform_layer("L0", layers["L0"][:, :5])
    with pytest.raises(ValueError, match="Layer 'L0': expected a 2-D"): pre.transform_layer("L0", layers["L0"][0])


@pytest.mark.parametrize("kwargs,message", [({"alpha": -0.1}, "alpha must lie"), ({"dim": 0}, "dim must be"),
                                            ({"norm": 0}, "norm must be positive")])
def test_bad_settings_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message): Preprocessor(**kwargs)


def test_fit_rejects_bad_layers():
    layers = _layers()
    with pytest.raises(ValueError, match="exceeds the width"): Preprocessor(dim=7).fit(layers)
    uneven = OrderedDict(a=layers["L0"], b=layers["L1"][:10])
    with pytest.raises(ValueError, match="same number of samples"): Preprocessor().fit(uneven)
    with pytest.raises(KeyError, match="was not fitted"): Preprocessor().fit(layers).transform_layer("L9", layers["L0"])


def test_save_load_roundtrip(fitted, tmp_path):
    pre, layers = fitted
    again = Preprocessor.load(pre.save(tmp_path / "pre.pt"))
    assert torch.equal(again.transform_layer("L1", layers["L1"]), pre.transform_layer("L1", layers["L1"]))


def test_real_network_head_roundtrip():
    target = get_target(replace(PRESETS["yinyang"], epochs=30))
    reps = prepare_representations(target, load_target_data(target.config))
    logits = reps.head_logits(reps.test[reps.names[-1]])
    assert torch.allclose(logits, reps.test_logits, atol=1e-3)
