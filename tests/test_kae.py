from dataclasses import replace

import pytest
import torch

from koopman_nb.data import CheckpointMismatch
from koopman_nb.kae import (KAEConfig, KoopmanAutoencoder, fit_kae, fvu, get_kae, isometry_loss, kae_losses, kae_preset,
                            layer_times, linearity_loss, load_kae, mse, prediction_loss, reconstruction_loss, save_kae,
                            evaluate_kae)
from koopman_nb.preprocess import prepare_representations
from koopman_nb.targets import PRESETS, get_target, load_target_data


@pytest.fixture(scope="module")
def reps():
    target = get_target(replace(PRESETS["yinyang"], epochs=30))
    return prepare_representations(target, load_target_data(target.config))


def test_operator_power_is_exp_m():
    torch.manual_seed(0)
    model = KoopmanAutoencoder(4, (8,), 6, k=25)
    with torch.no_grad(): model.M.copy_(torch.eye(6) + 0.2 * torch.randn(6, 6))
    power = torch.linalg.matrix_power(model.operator(1).double(), 25)
    assert torch.allclose(power, torch.linalg.matrix_exp(model.M.double()), atol=1e-4)


def test_operator_starts_at_exp_identity():
    model = KoopmanAutoencoder(3, (5,), 3, k=10)
    assert torch.allclose(model.operator(10), torch.eye(3) * torch.e, atol=1e-5)


def test_iterates_shapes_and_ends():
    torch.manual_seed(0)
    model = KoopmanAutoencoder(5, (7,), 6, k=12)
    x0 = torch.randn(9, 5)
    states, observables = model.iterates(x0), model.iterates(x0, decode=False)
    assert states.shape == (13, 9, 5)
    assert observables.shape == (13, 9, 6)
    assert torch.allclose(states[-1], model(x0).detach(), atol=1e-4)


def test_isometry_loss_hand_computed():
    x = torch.tensor([[0., 0.], [3., 4.], [0., 4.]])  # distances 5, 4, 3
    z = torch.tensor([[0.], [6.], [3.]])  # distances 6, 3, 3
    assert float(isometry_loss(x, z)) == pytest.approx((1 + 1 + 0) / 3)


def test_isometry_loss_duplicates_have_finite_gradient():
    x = torch.tensor([[1., 1.], [1., 1.], [0., 0.]])
    z = x.clone().requires_grad_(True)
    isometry_loss(x, z * 2).backward()
    assert torch.isfinite(z.grad).all()


def test_mse_losses_hand_computed():
    a, b = torch.tensor([[1., 2.], [3., 4.]]), torch.tensor([[1., 0.], [3., 8.]])
    assert float(linearity_loss(a, b)) == pytest.approx((0 + 4 + 0 + 16) / 4)
    assert float(prediction_loss(a, b)) == pytest.approx(5.0)
    assert float(mse(a, a)) == 0.0


def test_reconstruction_loss_of_identity_autoencoder():
    model = KoopmanAutoencoder(3, (), 3, k=1)
    with torch.no_grad():
        for layer in (model.encoder[0], model.decoder[0]):
            layer.weight.copy_(torch.eye(3)); layer.bias.zero_()
    assert float(reconstruction_loss(model, torch.randn(10, 3)).detach()) == pytest.approx(0.0, abs=1e-12)


def test_fvu_known_values():
    target = torch.tensor([[1.], [2.], [3.]])
    assert float(fvu(target, target)) == 0.0
    assert float(fvu(torch.full((3, 1), 2.0), target)) == pytest.approx(1.0)
    assert float(fvu(torch.zeros(3, 1), target)) == pytest.approx(14 / 2)


def test_loss_weights_combine():
    torch.manual_seed(1)
    model = KoopmanAutoencoder(4, (6,), 5, k=4)
    states = [torch.randn(12, 4) for _ in range(3)]
    cfg = KAEConfig(k=4, supervise="all", recon_weight=2.0, linearity_weight=0.5, prediction_weight=3.0, isometry_weight=0.1)
    t = kae_losses(model, states, [0, 2, 4], cfg)
    expected = 2 * t["reconstruction"] + 0.5 * t["linearity"] + 3 * t["prediction"] + 0.1 * t["isometry"]
    assert t["total"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_logit_term_needs_head_map():
    model = KoopmanAutoencoder(4, (6,), 5, k=4)
    with pytest.raises(ValueError, match="needs head_map"):
        kae_losses(model, [torch.randn(5, 4)] * 2, [0, 4], KAEConfig(k=4, logit_weight=1.0))


def test_layer_times():
    assert layer_times(6, 100) == [0, 20, 40, 60, 80, 100]
    assert layer_times(2, 7) == [0, 7]
    with pytest.raises(ValueError, match="at least two layers"): layer_times(1, 10)


def test_small_latent_warns():
    with pytest.warns(UserWarning, match="smaller than the state dimension"): KoopmanAutoencoder(10, (8,), 4)


@pytest.mark.parametrize("changes,message", [({"supervise": "odd"}, "supervise must be"), ({"epochs": 0}, "epochs must be"),
                                             ({"warmup": 1.0}, "warmup must lie")])
def test_bad_config_rejected(changes, message):
    with pytest.raises(ValueError, match=message): KAEConfig(**changes)


def test_unknown_preset():
    with pytest.raises(ValueError, match="Unknown KAE preset 'x'"): kae_preset("x")


def test_fit_is_deterministic_and_learns(reps):
    cfg = kae_preset("yinyang", epochs=8)
    a, b = fit_kae(reps, cfg, verbose=False), fit_kae(reps, cfg, verbose=False)
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name
    assert a.history[-1]["total"] < a.history[0]["total"]
    metrics = evaluate_kae(a.model, reps)
    assert 0 <= metrics["accuracy"] <= 100 and 0 <= metrics["agreement"] <= 100


def test_checkpoint_roundtrip_and_mismatch(reps, tmp_path):
    cfg = kae_preset("yinyang", epochs=2)
    fitted = fit_kae(reps, cfg, verbose=False)
    fitted.source = reps.key
    path = save_kae(fitted, tmp_path / "kae.pt")
    again = load_kae(path, cfg, reps.key, reps.pre.dim)
    x0 = reps.test[reps.names[0]]
    assert torch.equal(again.model(x0), fitted.model(x0))
    assert again.config == cfg
    with pytest.raises(CheckpointMismatch, match="lr: stored"): load_kae(path, replace(cfg, lr=1.0), reps.key, reps.pre.dim)


def test_get_kae_reuses_checkpoint(reps, tmp_path, monkeypatch):
    monkeypatch.setenv("KOOPMAN_NB_CACHE", str(tmp_path))
    cfg = kae_preset("yinyang", epochs=2)
    first = get_kae(reps, cfg, verbose=False)
    assert len(list((tmp_path / "kae").glob("*.pt"))) == 1
    second = get_kae(reps, cfg, verbose=False)
    assert second.seconds == first.seconds
    assert torch.equal(second.model.M, first.model.M)
