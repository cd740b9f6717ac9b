from dataclasses import asdict, replace
import json

import pytest
import torch
from torch import nn

from koopman_nb import data
from koopman_nb.data import CheckpointMismatch
from koopman_nb.targets import (PRESETS, ResMLP, TargetConfig, build_model, capture_layers, checkpoint_path,
                                evaluate, frozen_head, get_target, load_target, load_target_data, lr_schedule,
                                parameter_groups, predict_logits, preset, save_target, train_target)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def yin_yang_data():
    return load_target_data("yinyang")


@pytest.fixture(scope="module")
def tiny_config():
    return replace(PRESETS["yinyang"], epochs=4, n_train=700)


@pytest.fixture(scope="module")
def tiny_target(tiny_config, yin_yang_data):
    return train_target(tiny_config, data=None, checkpoint=False, verbose=False)


@pytest.mark.parametrize("name,width,n_layers,n_classes", [("yinyang", 10, 6, 3), ("mnist", 784, 5, 10)])
def test_preset_layer_shapes(name, width, n_layers, n_classes):
    config = preset(name)
    model = build_model(config)
    assert model.layer_names == ["input_layer"] + [f"blocks.{i}" for i in range(n_layers - 1)]
    captured = capture_layers(model, torch.randn(5, config.d_in))
    assert list(captured) == model.layer_names + ["head"]
    assert [tuple(v.shape) for v in captured.values()] == [(5, width)] * n_layers + [(5, n_classes)]
    assert all(v.dtype == torch.float32 for v in captured.values())


def test_resmlp_block_matches_formula():
    model = ResMLP(3, 4, 1, 2).eval()
    x = torch.randn(6, 3)
    block = model.blocks[0]
    l0 = torch.relu(model.input_layer[1](model.input_layer[0](x)))
    h = torch.relu(block.norm1(block.linear1(l0)))
    l1 = torch.relu(l0 + block.norm2(block.linear2(h)))
    torch.testing.assert_close(model(x), model.head(l1))


def test_capture_generic_sequential():
    model = nn.Sequential(nn.Linear(3, 5), nn.Sequential(nn.Tanh(), nn.Linear(5, 2)), nn.Flatten())
    x = torch.randn(11, 3)
    captured = capture_layers(model, x, layers=["1.1", "0"], batch_size=4)
    assert list(captured) == ["1.1", "0"]
    torch.testing.assert_close(captured["0"], model[0](x).detach())
    torch.testing.assert_close(captured["1.1"], model(x).detach())


def test_capture_flattens_image_layers():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    captured = capture_layers(model, torch.randn(7, 1, 6, 6), layers=["1", "3"])
    assert captured["1"].shape == (7, 32)
    assert captured["3"].shape == (7, 3)


def test_capture_deterministic_and_restores_modes():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2)).train()
    model[3].eval()  # a mixed state must come back as it was
    x = torch.randn(50, 4)
    first = capture_layers(model, x, batch_size=7)
    second = capture_layers(model, x, batch_size=7)
    whole = capture_layers(model, x, batch_size=50)
    for name in first:
        assert torch.equal(first[name], second[name]), name
        torch.testing.assert_close(first[name], whole[name])  # other batch sizes may round differently
    assert [m.training for m in model] == [True, True, True, False]
    assert model.training
    assert int(model[1].num_batches_tracked) == 0  # eval mode: BatchNorm statistics untouched


def test_capture_bad_inputs():
    model = ResMLP(2, 10, 2, 3)
    with pytest.raises(ValueError, match=r"Unknown layer names \['blocks.7'\]; valid names are"):
        capture_layers(model, torch.rand(4, 2), layers=["blocks.7"])
    with pytest.raises(ValueError, match="Layer names repeat"):
        capture_layers(model, torch.rand(4, 2), layers=["head", "head"])
    with pytest.raises(ValueError, match=r"expects inputs of shape \[n, 2\], got \[4, 3\]"):
        capture_layers(model, torch.rand(4, 3))
    with pytest.raises(ValueError, match="at least one input"):
        capture_layers(model, torch.rand(0, 2))


def test_capture_rejects_module_run_twice():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    with pytest.raises(ValueError, match="ran"):
        capture_layers(model, torch.randn(2, 3), layers=["0"])


def test_head_reproduces_logits(tiny_target, yin_yang_data):
    model = tiny_target.model
    x = yin_yang_data["test"][0]
    captured = capture_layers(model, x)
    head = frozen_head(model)
    assert not any(p.requires_grad for p in head.parameters())
    assert torch.equal(head(captured["blocks.4"]), captured["head"])
    assert torch.equal(captured["head"], predict_logits(model, x))


def test_lr_schedule_peaks_at_twenty_percent():
    lrs = lr_schedule(50, 0.3)
    assert len(lrs) == 51
    assert int(lrs.argmax()) == 10
    assert float(lrs.max()) == pytest.approx(0.3)
    assert float(lrs[0]) == 0.0
    assert float(lrs[-1]) == 0.0
    torch.testing.assert_close(lrs[:11], torch.linspace(0, 0.3, 11, dtype=torch.float64))
    torch.testing.assert_close(lrs[10:], torch.linspace(0.3, 0, 41, dtype=torch.float64))


def test_lr_schedule_short_runs():
    assert lr_schedule(1, 1.0).tolist() == [0.0, 1.0]
    assert lr_schedule(2, 1.0).tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="total_steps must be a positive integer"): lr_schedule(0, 1.0)


def test_weight_decay_only_on_matrices():
    model = ResMLP(2, 10, 3, 3)
    decayed, plain = parameter_groups(model, 5e-4)
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    norm_and_bias = {id(m.weight) for m in model.modules() if isinstance(m, nn.BatchNorm1d)}
    norm_and_bias |= {id(m.bias) for m in model.modules() if isinstance(m, (nn.Linear, nn.BatchNorm1d))}
    assert {id(p) for p in decayed["params"]} == linear_weights
    assert {id(p) for p in plain["params"]} == norm_and_bias
    assert decayed["weight_decay"] == 5e-4
    assert plain["weight_decay"] == 0.0


def test_training_is_bit_identical(tiny_config, tiny_target):
    again = train_target(tiny_config, checkpoint=False, verbose=False)
    for (name, a), b in zip(tiny_target.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert again.history == tiny_target.history
    other = train_target(replace(tiny_config, seed=1), checkpoint=False, verbose=False)
    assert not torch.equal(other.model.head.weight, tiny_target.model.head.weight)


def test_training_keeps_rng_and_threads(tiny_config):
    torch.manual_seed(123)
    expected = torch.rand(3)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    train_target(replace(tiny_config, epochs=1, threads=2), checkpoint=False, verbose=False)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_training_learns_yin_yang():
    target = train_target(replace(PRESETS["yinyang_paper"], epochs=20), checkpoint=False, verbose=False)
    assert target.metrics["test_accuracy"] > 85
    history = target.history
    assert len(history["epoch"]) == 20
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["lr"][-1] == 0.0


def test_metrics_and_history_keys(tiny_target):
    metrics = tiny_target.metrics
    for split in ("train", "val", "test"):
        assert 0 <= metrics[f"{split}_accuracy"] <= 100
        assert len(metrics[f"{split}_per_class"]) == 3
        assert metrics[f"{split}_mean_class_accuracy"] == pytest.approx(sum(metrics[f"{split}_per_class"]) / 3)
    assert metrics["seconds"] > 0
    assert set(tiny_target.history) == {"epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                        "test_loss", "test_accuracy"}


def test_evaluate_known_answer():
    model = nn.Linear(1, 3, bias=True)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0], [0.0], [-1.0]]))
        model.bias.zero_()
    x = torch.tensor([[2.0], [1.0], [-1.0], [-2.0], [3.0]])  # predicts 0, 0, 2, 2, 0
    report = evaluate(model, x, torch.tensor([0, 1, 2, 2, 0]), batch_size=2)
    assert report["per_class"] == [100.0, 0.0, 100.0]
    assert report["accuracy"] == pytest.approx(80.0)
    assert report["mean_class_accuracy"] == pytest.approx(200 / 3)
    assert report["n"] == 5


def test_config_json_round_trip():
    for config in PRESETS.values():
        assert TargetConfig(**json.loads(json.dumps(asdict(config)))) == config


def test_checkpoint_round_trip(tiny_target, tiny_config, yin_yang_data, tmp_path):
    path = save_target(tiny_target, tmp_path / "net.pt")
    loaded = load_target(path, tiny_config)
    x = yin_yang_data["test"][0]
    assert torch.equal(predict_logits(loaded.model, x), predict_logits(tiny_target.model, x))
    assert loaded.history == tiny_target.history
    assert loaded.metrics == tiny_target.metrics
    assert load_target(path).config == tiny_config


def test_checkpoint_rejects_other_config(tiny_target, tiny_config, tmp_path):
    path = save_target(tiny_target, tmp_path / "net.pt")
    with pytest.raises(CheckpointMismatch, match="seed: stored 0, expected 5"):
        load_target(path, replace(tiny_config, seed=5))
    with pytest.raises(CheckpointMismatch, match="width"):
        train_target(replace(tiny_config, width=12), checkpoint=path, verbose=False)


def test_train_target_reuses_checkpoint(tiny_config, empty_cache):
    first = train_target(tiny_config, verbose=False)
    assert first.path == checkpoint_path(tiny_config)
    assert first.path.parent == empty_cache / "targets"
    again = get_target(tiny_config)
    assert again.metrics["seconds"] == first.metrics["seconds"]  # loaded, not retrained
    assert torch.equal(again.model.head.weight, first.model.head.weight)


def test_reuse_rejects_other_data(tiny_config, yin_yang_data, empty_cache):
    train_target(tiny_config, verbose=False)
    other = dict(yin_yang_data, train=(yin_yang_data["train"][0][:700] + 0.01, yin_yang_data["train"][1][:700]))
    with pytest.raises(ValueError, match="trained on other data"):
        train_target(tiny_config, data=other, verbose=False)


def test_bad_inputs():
    with pytest.raises(ValueError, match="Unknown preset 'cifar10'"): get_target("cifar10")
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        replace(PRESETS["yinyang"], epochs=0)
    with pytest.raises(ValueError, match="Unknown dataset"): replace(PRESETS["yinyang"], dataset="cifar10")
    with pytest.raises(ValueError, match="n_train=6000 exceeds the 5000 training samples"):
        load_target_data(replace(PRESETS["yinyang"], n_train=6000))
    with pytest.raises(TypeError, match="config must be a TargetConfig"): train_target("yinyang")
    wrong_width = {"train": (torch.rand(10, 3), torch.zeros(10, dtype=torch.long)),
                   "test": (torch.rand(10, 3), torch.zeros(10, dtype=torch.long))}
    with pytest.raises(ValueError, match=r"shape \[10, 3\], but the configuration expects \[n, 2\]"):
        train_target(PRESETS["yinyang"], data=wrong_width, checkpoint=False, verbose=False)
