"""Closed-form operator edit, forget sets, targets, metrics and baselines of `koopman_nb.unlearning`."""
import json
from dataclasses import replace

import pytest
import torch

from koopman_nb.kae import KAEConfig, fit_kae
from koopman_nb.preprocess import prepare_representations
from koopman_nb.targets import PRESETS, load_target_data, train_target
from koopman_nb.unlearning import (EDIT_RECIPES, PROPOSED, EditedSurrogate, EditRecipe, edit_operator, edit_surrogate,
                                   edit_targets, forget_probe, forget_set, format_table, gradient_ascent, mia_efficacy,
                                   operator_matrix, retained_split, summary_table, total_variation,
                                   unlearning_metrics, unlearning_study)

F64 = torch.float64


def random_system(n_harmful=4, n_clean=60, p=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(p, p, generator=g, dtype=F64)
    H = torch.randn(n_harmful, p, generator=g, dtype=F64)
    X = torch.randn(n_clean, p, generator=g, dtype=F64)
    T = torch.randn(n_harmful, p, generator=g, dtype=F64)
    return A, H, X, T


def literal_edit(A, H, X, T, ridge):
    "The edit written exactly as C0, R, D, Δ with explicit inverses, as an independent reference."
    p = A.shape[0]
    C0 = X.T @ X + ridge * torch.eye(p, dtype=F64)
    R = T - H @ A
    D = H @ torch.linalg.inv(C0) @ H.T + ridge * torch.eye(len(H), dtype=F64)
    return A + torch.linalg.inv(C0) @ H.T @ torch.linalg.inv(D) @ R, D, R


@pytest.mark.parametrize("ridge", [1.0, 0.1, 1e-3, 1e-6])
def test_edit_constraint_residual_is_ridge_effect(ridge):
    A, H, X, T = random_system()
    edited = edit_operator(A, H, X, T, ridge=ridge)
    _, D, R = literal_edit(A, H, X, T, ridge)
    # H A' - T = H C0⁻¹Hᵀ D⁻¹R - R = (D - λI) D⁻¹R - R = -λ D⁻¹R.
    assert torch.allclose(H @ edited - T, -ridge * torch.linalg.solve(D, R), atol=1e-9)


def test_edit_residual_vanishes_with_ridge():
    A, H, X, T = random_system()
    residuals = [float((H @ edit_operator(A, H, X, T, ridge=r) - T).abs().max()) for r in (1.0, 1e-2, 1e-4, 1e-6)]
    assert residuals == sorted(residuals, reverse=True)
    assert residuals[-1] < 1e-4
    assert residuals[0] > 1e-2


def test_edit_matches_literal_formula():
    A, H, X, T = random_system()
    reference, _, _ = literal_edit(A, H, X, T, 0.1)
    assert torch.allclose(edit_operator(A, H, X, T, ridge=0.1), reference, atol=1e-10)


def test_edit_primal_form_matches_literal():
    # More harmful rows than observables: edit_operator solves the p×p system instead of D.
    A, H, X, T = random_system(n_harmful=30, n_clean=80, p=6)
    reference, _, _ = literal_edit(A, H, X, T, 0.1)
    assert torch.allclose(edit_operator(A, H, X, T, ridge=0.1), reference, atol=1e-9)


def test_edit_keeps_far_clean_rows():
    # Harmful rows live in the first two coordinates, clean rows mostly in the other four.
    g = torch.Generator().manual_seed(1)
    p = 6
    A = torch.randn(p, p, generator=g, dtype=F64)
    H = torch.zeros(5, p, dtype=F64)
    H[:, :2] = 3 + torch.randn(5, 2, generator=g, dtype=F64)
    X = torch.randn(200, p, generator=g, dtype=F64)
    X[:, :2] *= 0.01
    T = H @ A + 5 * torch.randn(5, p, generator=g, dtype=F64)
    delta = edit_operator(A, H, X, T, ridge=0.1) - A
    harmful_move = float((H @ delta).norm(dim=1).mean())
    clean_move = float((X @ delta).norm(dim=1).mean())
    assert harmful_move > 5
    assert clean_move < 0.02 * harmful_move


def test_edit_weights_pull_their_rows():
    A, H, X, T = random_system(n_harmful=20, n_clean=30, p=5)
    plain = edit_operator(A, H, X, T, ridge=1.0)
    weights = torch.ones(20, dtype=F64)
    weights[0] = 100
    weighted = edit_operator(A, H, X, T, ridge=1.0, harmful_weights=weights)
    assert (H[0] @ weighted - T[0]).norm() < 0.5 * (H[0] @ plain - T[0]).norm()


def test_edit_rejects_empty_clean_set():
    A, H, X, T = random_system()
    with pytest.raises(ValueError, match="clean set is empty"): edit_operator(A, H, X[:0], T)


def test_edit_rejects_empty_harmful_set():
    A, H, X, T = random_system()
    with pytest.raises(ValueError, match="harmful set is empty"): edit_operator(A, H[:0], X, T[:0])


def test_edit_rejects_singular_system():
    A, H, X, T = random_system(n_harmful=12, n_clean=3, p=8)
    with pytest.raises(ValueError, match="Raise the ridge"): edit_operator(A, H, X, T, ridge=0.0)


def test_edit_rejects_ill_conditioned_system():
    A, H, X, T = random_system()
    X = X.clone()
    X[:, 0] *= 1e7
    with pytest.raises(ValueError, match="ill-conditioned.*Raise the ridge"): edit_operator(A, H, X, T, ridge=1e-8)


def test_edit_rejects_bad_shapes_and_values():
    A, H, X, T = random_system()
    with pytest.raises(ValueError, match="targets must have shape"): edit_operator(A, H, X, T[:, :3])
    with pytest.raises(ValueError, match="columns to match A"): edit_operator(A, H[:, :3], X, T)
    bad = H.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"): edit_operator(A, bad, X, T)
    with pytest.raises(ValueError, match="ridge must be non-negative"): edit_operator(A, H, X, T, ridge=-1)
    with pytest.raises(ValueError, match="positive"): edit_operator(A, H, X, T, harmful_weights=torch.zeros(4))


LINE = torch.tensor([[0.], [1.], [2.], [1.5], [10.], [11.]], dtype=F64)
LINE_LABELS = torch.tensor([0, 0, 0, 1, 1, 2])
EYE = torch.eye(1, dtype=F64)


def test_forget_set_rules():
    assert forget_set(LINE, LINE_LABELS, 0).tolist() == [True, True, True, False, False, False]
    assert forget_set(LINE, LINE_LABELS, 0, EYE, "medoid").tolist() == [True, True, True, True, False, False]
    assert forget_set(LINE, LINE_LABELS, (0, 2)).tolist() == [True, True, True, False, False, True]


def test_forget_set_rejects_bad_classes():
    with pytest.raises(ValueError, match="out of range"): forget_set(LINE, LINE_LABELS, 3)
    with pytest.raises(ValueError, match="out of range"): forget_set(LINE, LINE_LABELS, -1)
    with pytest.raises(ValueError, match="does not occur"): forget_set(LINE, LINE_LABELS, 3, n_classes=5)
    with pytest.raises(ValueError, match="No class to forget"): forget_set(LINE, LINE_LABELS, [])
    with pytest.raises(ValueError, match="no clean samples remain"): forget_set(LINE, LINE_LABELS, [0, 1, 2])
    with pytest.raises(ValueError, match="operator=A"): forget_set(LINE, LINE_LABELS, 0, rule="medoid")
    with pytest.raises(ValueError, match="Unknown forget rule"): forget_set(LINE, LINE_LABELS, 0, rule="nearest")


def test_targets_known_answers():
    mask = forget_set(LINE, LINE_LABELS, 0)
    assert edit_targets(LINE, LINE_LABELS, mask, EYE, 0).squeeze().tolist() == [1.5, 1.5, 1.5]
    assert edit_targets(LINE, LINE_LABELS, mask, 2 * EYE, 0).squeeze().tolist() == [3.0, 3.0, 3.0]
    assert edit_targets(LINE, LINE_LABELS, mask, EYE, 0, "single").squeeze().tolist() == [7.5, 7.5, 7.5]
    logits = torch.tensor([[5., 1., 2.], [5., 2., 1.], [5., 2., 1.]])
    runner_up = edit_targets(LINE, LINE_LABELS, mask, EYE, 0, "runner_up_centroid", logits)
    assert runner_up.squeeze().tolist() == [11, 5.75, 5.75]
    with pytest.raises(ValueError, match="needs the unedited"):
        edit_targets(LINE, LINE_LABELS, mask, EYE, 0, "runner_up_nearest")
    with pytest.raises(ValueError, match="Unknown target rule"):
        edit_targets(LINE, LINE_LABELS, mask, EYE, 0, "farthest")


def test_neighbour_vote_targets():
    # Forgetting class 1 leaves the points 1.5 and 10 to retarget. The point at 10 has class 2 (at 11) nearest
    # but class 0 (at 2 and 1) as the majority of its three nearest clean points.
    mask = forget_set(LINE, LINE_LABELS, 1)
    def targets(k): return edit_targets(LINE, LINE_LABELS, mask, EYE, 1, "neighbour_centroid", neighbours=k)
    assert targets(1).squeeze().tolist() == [1.0, 11.0]
    assert targets(2).squeeze().tolist() == [1.0, 11.0]  # a 1-1 tie goes to the nearer class
    assert targets(3).squeeze().tolist() == [1.0, 1.0]
    assert targets(50).squeeze().tolist() == [1.0, 1.0]  # more neighbours than clean points: all of them vote
    assert edit_targets(LINE, LINE_LABELS, mask, 2 * EYE, 1, "neighbour_centroid", neighbours=1).squeeze().tolist() \
        == [2.0, 22.0]  # the vote reads observables, but the target is an advanced observable (doubled here)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="neighbours must be a positive integer"):
            targets(bad)
    with pytest.raises(ValueError, match="neighbours must be a positive integer"):
        EditRecipe("label", "neighbour_centroid", neighbours=0)


def test_total_variation_known_answers():
    a = torch.tensor([[0., 0.]])
    assert total_variation(a, a) == 0
    assert abs(total_variation(torch.tensor([[50., 0.]]), torch.tensor([[0., 50.]])) - 1) < 1e-12
    half = torch.log(torch.tensor([[0.5, 0.5]]))
    assert abs(total_variation(half, torch.log(torch.tensor([[0.75, 0.25]]))) - 0.25) < 1e-6


def test_mia_efficacy_separates_confidence():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 2] * 200)
    confident = 12 * torch.nn.functional.one_hot(labels, 3).float() + 0.1 * torch.randn(600, 3, generator=g)
    unsure = 0.8 * torch.nn.functional.one_hot(labels, 3).float() + 0.1 * torch.randn(600, 3, generator=g)
    train = confident.clone()
    train[labels == 2] = unsure[labels == 2]  # the forgotten class gets the low confidence of unseen data
    assert mia_efficacy(train, labels, unsure, labels, (2,)) > 95
    assert mia_efficacy(confident, labels, unsure, labels, (2,)) < 5


def test_probe_reads_encoded_class():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 2] * 300)
    noise = torch.randn(900, 4, generator=g)
    encoded = noise.clone()
    encoded[:, 0] += 4 * (labels == 1)
    assert forget_probe(encoded, labels, encoded, labels, (1,))["auc"] > 0.99
    assert abs(forget_probe(noise[:450], labels[:450], noise[450:], labels[450:], (1,))["auc"] - 0.5) < 0.1


def test_metrics_known_answers():
    labels = torch.tensor([0, 1, 2] * 50)
    logits = 10 * torch.nn.functional.one_hot(labels, 3).float()
    forgotten = logits.clone()
    forgotten[labels == 2] = 10 * torch.nn.functional.one_hot(torch.zeros(50, dtype=torch.long), 3).float()
    m = unlearning_metrics(2, forgotten, labels, forgotten, labels, reference_test_logits=logits)
    assert m["forget_accuracy"] == 0
    assert m["UA"] == 100
    assert m["TA"] == 100
    assert m["RA"] == 100
    assert abs(m["TV"] - 1) < 1e-3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    "A real Yin-Yang network and autoencoder, trained briefly on a subset, in a private cache."
    mp = pytest.MonkeyPatch()
    mp.setenv("KOOPMAN_NB_CACHE", str(tmp_path_factory.mktemp("cache")))
    config = replace(PRESETS["yinyang_paper"], epochs=15, n_train=900)
    data = load_target_data(config)
    target = train_target(config, data, verbose=False)
    reps = prepare_representations(target, data)
    kae = fit_kae(reps, KAEConfig(epochs=15, batch_size=256, lr=3e-2, isometry_sample=128), verbose=False)
    yield config, data, target, reps, kae
    mp.undo()


def test_edit_leaves_models_untouched(tiny):
    _, _, target, reps, kae = tiny
    states = {name: v.clone() for name, v in kae.model.state_dict().items()}
    network = {name: v.clone() for name, v in target.model.state_dict().items()}
    K = kae.model.operator(1).detach().clone()
    surrogate = EditedSurrogate.unedited(kae.model, reps)
    edited, info = edit_surrogate(surrogate, 2, EDIT_RECIPES[PROPOSED])
    assert info["forget_set"] == int((reps.train_labels == 2).sum())
    assert edited.operator.shape == (kae.model.latent + 1, kae.model.latent)
    assert all(torch.equal(states[n], v) for n, v in kae.model.state_dict().items())
    assert all(torch.equal(network[n], v) for n, v in target.model.state_dict().items())
    assert torch.equal(kae.model.operator(1), K)
    assert torch.equal(surrogate.operator, operator_matrix(kae.model))


def test_unedited_surrogate_matches_kae(tiny):
    _, _, _, reps, kae = tiny
    surrogate = EditedSurrogate.unedited(kae.model, reps)
    with torch.no_grad(): direct = reps.head_logits(kae.model(reps.test[reps.names[0]]))
    assert torch.allclose(surrogate.logits("test"), direct, atol=1e-4)


def test_edit_lowers_forget_accuracy(tiny):
    _, _, _, reps, kae = tiny
    surrogate = EditedSurrogate.unedited(kae.model, reps)
    edited, _ = edit_surrogate(surrogate, 2, EditRecipe("label", "runner_up_centroid", ridge=0.3))
    before = (surrogate.logits("test").argmax(1)[reps.test_labels == 2] == 2).double().mean()
    after = (edited.logits("test").argmax(1)[reps.test_labels == 2] == 2).double().mean()
    assert after < 0.5 * before


def test_gradient_ascent_stops_by_rule(tiny):
    _, data, target, _, _ = tiny
    before = {n: v.clone() for n, v in target.model.state_dict().items()}
    model, info = gradient_ascent(target.model, data, 2, lr=1e-2, max_steps=300, stop_accuracy=5.0)
    assert info["forget_train_accuracy"] <= 5.0 or info["steps"] == 300
    assert all(torch.equal(before[n], v) for n, v in target.model.state_dict().items())
    assert model is not target.model


def test_gradient_ascent_check_subsample(tiny):
    _, data, target, _, _ = tiny
    forgotten = int((data["train"][1] == 2).sum())
    _, info = gradient_ascent(target.model, data, 2, lr=1e-2, max_steps=5, check_samples=7)
    assert info["checked_samples"] == 7
    _, info = gradient_ascent(target.model, data, 2, lr=1e-2, max_steps=5, check_samples=10 * forgotten)
    assert info["checked_samples"] == forgotten
    a, _ = gradient_ascent(target.model, data, 2, lr=1e-2, max_steps=5, check_samples=7, seed=3)
    b, _ = gradient_ascent(target.model, data, 2, lr=1e-2, max_steps=5, check_samples=7, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="check_samples must be a positive integer"):
            gradient_ascent(target.model, data, 2, check_samples=bad)


def test_retained_split_drops_class(tiny):
    _, data, _, _, _ = tiny
    x, y = retained_split(data, (0, 2))
    assert set(y.tolist()) == {1}
    assert len(x) == int((data["train"][1] == 1).sum())


def test_study_is_json_serialisable(tiny):
    config, _, _, _, _ = tiny
    kae_config = KAEConfig(epochs=5, batch_size=256, lr=3e-2, isometry_sample=128)
    started = []
    study = unlearning_study(config, kae_config, [1], seeds=(0,),
                             methods=("network", "surrogate", "retrain", "label · single"), verbose=False,
                             before_retrain=started.append)
    assert started == [(1,)]
    json.dumps(study)
    rows = {r["method"]: r for r in study["studies"][0]["rows"]}
    assert set(rows) == {"network", "surrogate", "retrain", "label · single"}
    retrained = rows["retrain"]["runs"][0]
    # The retrained head never saw a positive example of the class, so it does not predict it here.
    assert retrained["forget_accuracy"] == 0
    for key in ("forget_accuracy", "TA", "RA", "UA", "MIA", "probe_accuracy", "probe_auc", "TV", "seconds", "TA_drop"):
        assert key in rows["label · single"]["summary"], key
    assert rows["surrogate"]["summary"]["TA_drop"]["mean"] == 0
    table = format_table(study["studies"][0]).splitlines()
    assert len(table) == 2 + 4
    assert table[2].startswith("| network |")
    assert len(summary_table(study).splitlines()) == 2 + 4


def test_study_rejects_unknown_method(tiny):
    config, _, _, _, _ = tiny
    with pytest.raises(ValueError, match="Unknown methods"):
        unlearning_study(config, KAEConfig(epochs=1), [1], seeds=(0,), methods=("retrain", "forget_everything"))
