"""Betti numbers on sparse ε-graphs: known answers, agreement with gudhi's full Rips complex, exact scale ties,
block-wise search, duplicates and bad input."""
import functools
import math

import matplotlib
import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the backend)

from koopman_nb import topology
from koopman_nb.data import mnist, yin_yang
from koopman_nb.topology import (BettiAlong, BettiBand, betti_along, betti_band, betti_by_class, betti_curve,
                                 betti_numbers, bottleneck_distances, choose_eps, distance_distortion,
                                 frobenius_normalise, gudhi_rips_betti, persistence_diagrams, plot_band,
                                 plot_depth_comparison)


def noisy_circle(rng, n, radius=1.0, centre=(0.0, 0.0), noise=0.05):
    angle = rng.uniform(0, 2 * np.pi, n)
    return radius * np.c_[np.cos(angle), np.sin(angle)] + centre + noise * rng.standard_normal((n, 2))


def pad(points, dim):
    "Append zero coordinates up to `dim`, which keeps every distance and selects the matrix-product search."
    return np.c_[points, np.zeros((len(points), dim - points.shape[1]))]


@pytest.fixture
def circle():
    return noisy_circle(np.random.default_rng(0), 200)


@pytest.fixture
def lattice():
    return np.array([(a, b) for a in range(3) for b in range(3)], dtype=float)


# Known answers

def test_circle_has_one_loop(circle):
    assert betti_numbers(circle, 0.3) == [1, 1]
    assert betti_numbers(pad(circle, 20), 0.3) == [1, 1]


def test_two_circles_have_two_loops():
    rng = np.random.default_rng(1)
    points = np.r_[noisy_circle(rng, 200), noisy_circle(rng, 200, centre=(3, 0))]
    assert betti_numbers(points, 0.3) == [2, 2]


def test_filled_disk_is_contractible():
    rng = np.random.default_rng(2)
    r, angle = np.sqrt(rng.uniform(0, 1, 500)), rng.uniform(0, 2 * np.pi, 500)
    assert betti_numbers(np.c_[r * np.cos(angle), r * np.sin(angle)], 0.3) == [1, 0]


@pytest.mark.parametrize("dim", [1, 3, 30])
def test_isolated_points_are_components(dim):
    points = pad(np.arange(12.0)[:, None] * 10, dim) if dim > 1 else np.arange(12.0)[:, None] * 10
    assert betti_numbers(points, 1.0) == [12, 0]


def test_sphere_has_a_void():
    rng = np.random.default_rng(3)
    sphere = rng.standard_normal((300, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    assert betti_numbers(sphere, 0.8, max_dim=2) == [1, 0, 1]


def test_max_dim_zero_returns_beta_0_only(circle):
    assert betti_numbers(circle, 0.3, max_dim=0) == [1]


def test_yin_yang_classes_at_rule_scale():
    x, y = yin_yang(1000, 40)
    assert betti_numbers(x, choose_eps(x)) == [1, 0]
    assert betti_by_class(x, y) == {0: [1, 1], 1: [1, 1], 2: [2, 0]}


# Agreement with gudhi's full Rips complex

@pytest.mark.parametrize("dim", [1, 2, 3, 8, 9, 16, 60])
def test_matches_gudhi_full_rips(dim):
    rng = np.random.default_rng(dim)
    for trial in range(3):
        x = rng.standard_normal((45, dim)) * rng.uniform(0.3, 3, dim)
        if trial == 1: x = np.r_[x, x[:12]]  # exact duplicates
        distances = pdist(x)
        for q in (0.03, 0.1, 0.25, 0.5):
            eps = float(np.quantile(distances, q))
            expected = gudhi_rips_betti(x, eps, max_dim=2)
            assert betti_numbers(x, eps, max_dim=2) == expected, (dim, trial, q)
            assert betti_numbers(x, eps, max_dim=0) == expected[:1], (dim, trial, q)
            assert betti_curve(x, [eps, 2 * eps], max_dim=2)[0].tolist() == expected, (dim, trial, q)


def test_matches_gudhi_on_real_mnist_images():
    images, _ = mnist("test")
    x = images[:80].reshape(80, -1).astype(np.float64) / 255
    for q in (0.02, 0.1, 0.3):
        eps = float(np.quantile(pdist(x), q))
        assert betti_numbers(x, eps) == gudhi_rips_betti(x, eps)


# The neighbourhood graph

@pytest.mark.parametrize("dim", [2, 50])
def test_edges_equal_brute_force(dim):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((600, dim))
    brute = pdist(x)
    scales = np.quantile(brute, [0.001, 0.02, 0.1])
    i, j, length = (np.concatenate(p) for p in zip(*topology._edge_blocks(x, scales)))
    rows, cols = np.triu_indices(len(x), k=1)
    for eps in scales:
        assert set(zip(i[length <= eps], j[length <= eps])) == set(zip(rows[brute <= eps], cols[brute <= eps]))


def test_edges_equal_brute_force_on_mnist():
    images, _ = mnist("test")
    x = images[:500].reshape(500, -1).astype(np.float64) / 255
    brute = pdist(x)
    eps = float(np.quantile(brute, 0.05))
    i, j, length = (np.concatenate(p) for p in zip(*topology._edge_blocks(x, np.array([eps]))))
    rows, cols = np.triu_indices(len(x), k=1)
    assert set(zip(i, j)) == set(zip(rows[brute <= eps], cols[brute <= eps]))
    assert np.allclose(np.sort(length), np.sort(brute[brute <= eps]), rtol=1e-4)


def test_many_blocks_give_same_answer(monkeypatch, circle):
    rng = np.random.default_rng(5)
    high = circle @ np.linalg.qr(rng.standard_normal((20, 20)))[0][:2]
    grid = np.geomspace(0.05, 1.0, 12)
    expected = {(name, dim): betti_curve(points, grid, max_dim=dim)
                for name, points in (("low", circle), ("high", high)) for dim in (0, 1)}
    monkeypatch.setattr(topology, "_BLOCK_PAIRS", 2000)
    monkeypatch.setattr(topology, "_KD_BLOCK_ROWS", 7)
    for (name, dim), curve in expected.items():
        points = circle if name == "low" else high
        np.testing.assert_array_equal(betti_curve(points, grid, max_dim=dim), curve)
    np.testing.assert_array_equal(expected["low", 0][:, 0], expected["low", 1][:, 0])


def test_scale_equal_to_an_edge_length(lattice):
    for points in (lattice, pad(lattice, 20)):
        assert betti_numbers(points, 1.0) == [1, 4]
        assert betti_numbers(points, math.nextafter(1.0, 0.0)) == [9, 0]
        assert betti_numbers(points, math.sqrt(2.0)) == [1, 0]


def test_tie_in_cloud_with_large_norms():
    rng = np.random.default_rng(6)
    far = 1000 * rng.standard_normal((50, 40))
    pair = np.zeros((2, 40))
    pair[1, :2] = (3.0, 4.0)  # exactly 5 apart
    x = np.r_[far, pair + 1e4]
    assert betti_numbers(x, 5.0, max_dim=0) == [51]
    assert betti_numbers(x, math.nextafter(5.0, 0.0), max_dim=0) == [52]


def test_subnormal_distance_is_still_an_edge():
    x = np.zeros((2, 30))
    x[1, 0] = 1e-320
    assert betti_numbers(x, 1.0) == [1, 0]


# Duplicates and empty graphs

def test_duplicates_do_not_change_betti(circle):
    assert betti_numbers(np.repeat(circle, 4, axis=0), 0.3) == [1, 1]
    assert betti_numbers(np.repeat(pad(circle, 12), 3, axis=0), 0.3) == [1, 1]


def test_all_points_identical():
    assert betti_numbers(np.zeros((40, 5)), 0.1) == [1, 0]
    assert betti_curve(np.ones((10, 2)), [0.1, 1.0]).tolist() == [[1, 0], [1, 0]]


def test_negative_zero_equals_zero():
    assert betti_numbers(np.array([[0.0, -0.0], [0.0, 0.0], [5.0, 5.0]]), 1.0) == [2, 0]


def test_no_edges(circle):
    assert betti_numbers(circle, 1e-9) == [200, 0]
    assert betti_numbers(pad(circle, 20), 1e-9) == [200, 0]
    assert betti_numbers(np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]]), 1.0, max_dim=2) == [3, 0, 0]


# Betti curves

@pytest.mark.parametrize("dim", [2, 25])
def test_curve_agrees_with_betti_numbers(circle, dim):
    points = pad(circle, dim)
    grid = np.r_[np.geomspace(0.01, 1.5, 20), 0.3]
    curve = betti_curve(points, grid)
    assert curve.shape == (21, 2)
    assert curve.dtype == np.int64
    for eps, row in zip(grid, curve):
        assert row.tolist() == betti_numbers(points, eps), eps


def test_curve_at_exact_edge_lengths(lattice):
    grid = [2.0, 1.0, 0.5, math.sqrt(2.0), math.nextafter(1.0, 0.0)]
    for points in (lattice, pad(lattice, 20)):
        assert betti_curve(points, grid).tolist() == [betti_numbers(points, e) for e in grid]


# The scale rule

def test_choose_eps_is_scale_and_rotation_invariant(circle):
    rotation = np.linalg.qr(np.random.default_rng(7).standard_normal((2, 2)))[0]
    eps = choose_eps(circle)
    assert math.isclose(choose_eps(4.0 * circle @ rotation - 2.0), 4.0 * eps, rel_tol=1e-9)
    high = pad(circle, 30)
    assert math.isclose(choose_eps(high), eps, rel_tol=1e-9)


def test_choose_eps_ignores_duplicates(circle):
    assert choose_eps(np.repeat(circle, 3, axis=0)) == choose_eps(circle)


def test_choose_eps_samples_large_clouds():
    x, _ = yin_yang(5000, 42)
    assert choose_eps(x, sample=5000) == pytest.approx(choose_eps(x), rel=0.1)
    assert choose_eps(x, seed=1) != choose_eps(x, seed=2)


def test_choose_eps_warns_for_small_clouds(circle):
    with pytest.warns(UserWarning, match="using k=9"):
        choose_eps(circle[:10])


# Per class and along a sequence

def test_betti_by_class_with_explicit_scale():
    x, y = yin_yang(1000, 40)
    assert betti_by_class(x, y, eps=0.5, max_dim=0) == {0: [1], 1: [1], 2: [1]}
    rule = functools.partial(choose_eps, k=40)
    assert betti_by_class(x, y, eps=rule) == betti_by_class(x, y)


def test_betti_along_accepts_lists_dicts_and_tensors(circle):
    halves = (circle[:, 0] > 0).astype(int)
    clouds = {"circle": torch.from_numpy(circle).float(), "segment": circle * [1.0, 0.0]}
    result = betti_along(clouds, torch.from_numpy(halves))
    assert isinstance(result, BettiAlong)
    assert result.names == ["circle", "segment"]
    assert result.betti.tolist() == [[1, 1], [1, 0]]
    assert result.classes == [0, 1]
    assert result.betti_by_class.shape == (2, 2, 2)
    assert result.betti_by_class[0].tolist() == [[1, 0], [1, 0]]
    assert betti_along([circle, circle], eps=[0.3, 1e-9], max_dim=0).betti.tolist() == [[1], [200]]
    assert "pooled" in result.table()


def test_betti_along_single_point_class():
    x = np.r_[np.zeros((5, 3)), np.random.default_rng(8).standard_normal((60, 3))]
    labels = np.r_[np.zeros(5, int), np.ones(60, int)]
    result = betti_along([x], labels)
    assert math.isnan(result.eps_by_class[0, 0])
    assert result.betti_by_class[0, 0].tolist() == [1, 0]


def test_frobenius_normalise():
    x = np.random.default_rng(9).standard_normal((100, 7)) + 3
    z = frobenius_normalise(x)
    assert np.linalg.norm(z) == pytest.approx(100.0)
    assert np.allclose(z.mean(axis=0), 0.0)
    with pytest.raises(ValueError, match="identical"):
        frobenius_normalise(np.ones((5, 2)))


# Seed bands and plots

def along(names, betti, betti_by_class, classes=(0, 1)):
    "A BettiAlong with given numbers (scales are not needed by bands and plots)."
    betti, betti_by_class = np.array(betti), np.array(betti_by_class)
    return BettiAlong(list(names), np.zeros(len(names), np.int64), np.ones(len(names)), betti, list(classes),
                      np.ones(betti_by_class.shape[:2]), betti_by_class)


@pytest.fixture
def two_seeds():
    first = along(["t0", "t1"], [[3, 1], [1, 0]], [[[2, 0], [1, 1]], [[1, 0], [1, 0]]])
    second = along(["t0", "t1"], [[5, 1], [1, 0]], [[[4, 0], [1, 1]], [[1, 0], [1, 0]]])
    return first, second


def test_betti_band_spread(two_seeds):
    band = betti_band(two_seeds)
    assert isinstance(band, BettiBand)
    assert band.names == ["t0", "t1"]
    assert band.betti.shape == (2, 2, 2)
    spread = band.spread()
    assert spread["mean"].tolist() == [[4, 1], [1, 0]]
    assert spread["min"].tolist() == [[3, 1], [1, 0]]
    assert spread["max"].tolist() == [[5, 1], [1, 0]]
    assert spread["std"][0, 0] == pytest.approx(math.sqrt(2))
    assert spread["std"][1].tolist() == [0, 0]
    assert band.spread(by_class=True)["mean"][0, 0].tolist() == [3, 0]


def test_betti_band_single_seed(two_seeds):
    band = betti_band(two_seeds[:1])
    assert band.spread()["std"].tolist() == [[0, 0], [0, 0]]
    assert band.spread()["mean"].tolist() == [[3, 1], [1, 0]]


def test_betti_band_table(two_seeds):
    table = betti_band(two_seeds).table(dim=0)
    assert "4.0 ± 1.4" in table
    assert "class 1" in table


def test_betti_band_rejects_other_clouds(two_seeds):
    first, _ = two_seeds
    renamed = along(["a", "b"], first.betti, first.betti_by_class)
    other_classes = along(["t0", "t1"], first.betti, first.betti_by_class, classes=(0, 2))
    with pytest.raises(ValueError, match="at least one"):
        betti_band([])
    with pytest.raises(ValueError, match=r"Result 1 has clouds \['a', 'b'\]"):
        betti_band([first, renamed])
    with pytest.raises(ValueError, match="classes"):
        betti_band([first, other_classes])


def test_plot_band_draws_mean_and_range():
    _, ax = plt.subplots()
    values = np.array([[1.0, 4.0, 2.0], [3.0, 0.0, 2.0]])
    line = plot_band(ax, [0, 1, 2], values, "mean")
    assert line.get_ydata().tolist() == [2.0, 2.0, 2.0]
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == 0.0
    assert band[:, 1].max() == 4.0
    with pytest.raises(ValueError, match=r"shape \[seeds, 2\]"):
        plot_band(ax, [0, 1], values)
    _, bare = plt.subplots()
    plot_band(bare, [0, 1, 2], values, band_alpha=0)
    assert len(bare.lines) == 1
    assert len(bare.collections) == 0
    plt.close("all")


def test_plot_depth_comparison_layout(two_seeds):
    band = betti_band(two_seeds)
    network = along(["L0", "L1"], [[4, 0], [1, 0]], [[[1, 0], [1, 0]], [[1, 0], [1, 0]]])
    axes = plot_depth_comparison(band, [0, 10], network, [0, 10])
    assert axes.shape == (2, 2)
    assert axes[0, 0].lines[0].get_ydata().tolist() == [4, 1]
    assert axes[0, 0].lines[1].get_ydata().tolist() == [4, 1]
    pooled_only = betti_band([along(["t0"], [[2]], np.zeros((1, 0, 1)), classes=())])
    assert plot_depth_comparison(pooled_only, [0], along(["L0"], [[2]], np.zeros((1, 0, 1)), ()), [0]).shape == (1, 1)
    with pytest.raises(ValueError, match="one step per cloud of the band: got 3 for 2"):
        plot_depth_comparison(band, [0, 5, 10], network, [0, 10])
    with pytest.raises(ValueError, match="one step per layer: got 1 for 2"):
        plot_depth_comparison(band, [0, 10], network, [0])
    with pytest.raises(ValueError, match="same max_dim and labels"):
        plot_depth_comparison(band, [0, 10], along(["L0", "L1"], [[4], [1]], np.ones((2, 2, 1), int)), [0, 10])
    plt.close("all")


# Distortion of distances and persistence diagrams

def test_distortion_known_answers():
    two = np.array([[0.0], [1.0]])
    assert distance_distortion(two, 1.2 * two) == pytest.approx({"max": 0.2, "mean": 0.2})
    x = np.random.default_rng(10).standard_normal((50, 3))
    rotation, _ = np.linalg.qr(np.random.default_rng(11).standard_normal((3, 3)))
    assert distance_distortion(x, x @ rotation + 5)["max"] < 1e-9
    assert distance_distortion(x, pad(x, 7))["max"] < 1e-9
    doubled = distance_distortion(x, 2 * x)
    assert doubled["max"] == pytest.approx(pdist(x).max())
    assert doubled["mean"] == pytest.approx(pdist(x).mean())


def test_distortion_in_blocks_matches_all_pairs(monkeypatch):
    rng = np.random.default_rng(12)
    x, z = rng.standard_normal((300, 4)), rng.standard_normal((300, 9))
    gap = np.abs(pdist(z) - pdist(x))
    monkeypatch.setattr(topology, "_BLOCK_PAIRS", 1000)
    result = distance_distortion(x, z)
    assert result["max"] == pytest.approx(gap.max())
    assert result["mean"] == pytest.approx(gap.mean())


def test_persistence_diagrams_of_even_circle():
    angle = np.arange(300) * 2 * np.pi / 300
    points = np.c_[np.cos(angle), np.sin(angle)]
    h0, h1 = persistence_diagrams(points)
    neighbour = 2 * np.sin(np.pi / 300)
    assert len(h0) == 300
    assert np.isinf(h0[:, 1]).sum() == 1
    assert np.allclose(h0[np.isfinite(h0[:, 1]), 1], neighbour)
    # One loop, born when neighbours join and filled by the inscribed equilateral triangle (side sqrt(3)).
    assert len(h1) == 1
    assert h1[0] == pytest.approx([neighbour, math.sqrt(3)])


def test_persistence_diagrams_agree_with_betti_numbers(circle):
    h0, h1 = persistence_diagrams(circle)
    for eps in (0.05, 0.2, 0.3, 1.0):
        alive = [int(np.sum((d[:, 0] <= eps) & (d[:, 1] > eps))) for d in (h0, h1)]
        assert alive == betti_numbers(circle, eps)


def test_bottleneck_known_answers():
    two = np.array([[0.0], [1.0]])
    assert bottleneck_distances(two, 1.2 * two) == pytest.approx([0.2, 0.0])
    assert bottleneck_distances(two, 3.0 * two, max_dim=0) == pytest.approx([1.5])  # both bars to the diagonal
    x = np.random.default_rng(13).standard_normal((80, 3))
    rotation, _ = np.linalg.qr(np.random.default_rng(14).standard_normal((3, 3)))
    assert max(bottleneck_distances(x, x @ rotation)) < 1e-9


def test_bottleneck_is_bounded_by_distortion(circle):
    rng = np.random.default_rng(15)
    for noise in (0.01, 0.05, 0.2):
        z = circle + noise * rng.standard_normal(circle.shape)
        bound = distance_distortion(circle, z)["max"]
        assert max(bottleneck_distances(circle, z)) <= bound + 1e-9


def test_clouds_must_have_same_samples(circle):
    with pytest.raises(ValueError, match="x has 200 points and z has 199"):
        distance_distortion(circle, circle[:-1])
    with pytest.raises(ValueError, match="x has 200 points and z has 199"):
        bottleneck_distances(circle, circle[:-1])
    with pytest.raises(ValueError, match="z contains 1 NaN"):
        distance_distortion(circle, np.r_[circle[:-1], [[np.nan, 0.0]]])
    with pytest.raises(ValueError, match="non-negative integer"):
        persistence_diagrams(circle, max_dim=-1)


# Bad input

@pytest.mark.parametrize("eps, message", [(0, "positive finite distance"), (-1.0, "positive finite distance"),
                                          (math.inf, "positive finite distance"), (math.nan, "positive finite"),
                                          ("0.3", "positive number"), (True, "positive number")])
def test_bad_eps(circle, eps, message):
    with pytest.raises((ValueError, TypeError), match=message):
        betti_numbers(circle, eps)


@pytest.mark.parametrize("points, message", [
    (np.zeros(10), "2-D array"), (np.zeros((2, 3, 4)), "2-D array"), (np.zeros((1, 3)), "at least 2 points"),
    (np.zeros((0, 3)), "at least 2 points"), (np.zeros((5, 0)), "at least one coordinate"),
    ([["a", "b"], ["c", "d"]], "numeric array"),
])
def test_bad_points(points, message):
    with pytest.raises((ValueError, TypeError), match=message):
        betti_numbers(points, 1.0)


def test_non_finite_points_are_named(circle):
    bad = circle.copy()
    bad[17, 1] = np.nan
    bad[30, 0] = -np.inf
    with pytest.raises(ValueError, match=r"1 NaN and 1 infinite values in 2 rows \(first: row 17\)"):
        betti_numbers(bad, 0.3)
    with pytest.raises(ValueError, match="NaN"):
        choose_eps(bad)


@pytest.mark.parametrize("max_dim", [-1, 1.0, True, "1"])
def test_bad_max_dim(circle, max_dim):
    with pytest.raises(ValueError, match="non-negative integer"):
        betti_numbers(circle, 0.3, max_dim=max_dim)


@pytest.mark.parametrize("grid, message", [([], "non-empty"), ([[0.1, 0.2]], "1-D"), ([0.1, 0.0], "entry 1"),
                                           ([np.nan], "entry 0")])
def test_bad_grid(circle, grid, message):
    with pytest.raises(ValueError, match=message):
        betti_curve(circle, grid)


def test_bad_rule_parameters(circle):
    with pytest.raises(ValueError, match="quantile"):
        choose_eps(circle, quantile=1.5)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        choose_eps(circle, k=0)
    with pytest.raises(ValueError, match="identical"):
        choose_eps(np.ones((20, 3)))


def test_bad_labels_and_scales(circle):
    with pytest.raises(ValueError, match="one label per point"):
        betti_by_class(circle, np.zeros(10))
    with pytest.raises(ValueError, match="Class 1 has 1 point"):
        betti_by_class(circle, np.r_[np.zeros(199, int), 1])
    with pytest.raises(ValueError, match="eps has 3 scales but there are 2 clouds"):
        betti_along([circle, circle], eps=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least one point cloud"):
        betti_along([])
    with pytest.raises(ValueError, match="scale returned by the eps rule"):
        betti_along([circle], eps=lambda x: -1.0)
