"""End-to-end checks of `koopman-nb reproduce` at quick size, run through the installed console script.

Each run gets its own empty checkpoint cache (`KOOPMAN_NB_CACHE`), so every model is trained by the run under test.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import koopman_nb
from koopman_nb.reproduce import QUICK_RECIPES, STAGES, default_workers, main, reproduction_plan
from koopman_nb.unlearning import BASELINES

SCRIPT = shutil.which("koopman-nb")
QUICK_LABEL = "[yinyang, QUICK smoke test]"
LAYERS = ["input", "L0", "L1", "L2", "L3", "L4", "L5", "logits"]
MEASURES = ("forget_accuracy", "retained_accuracy", "UA", "RA", "TA", "MIA", "probe_accuracy", "probe_auc", "seconds")


def run_cli(*args, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KOOPMAN_NB_CACHE": str(cache)}
    return subprocess.run([SCRIPT, *map(str, args)], capture_output=True, text=True, env=env, timeout=900)


def quick_args(out: Path, workers: int) -> list:
    return ["reproduce", "yinyang", "--quick", "--out", out, "--workers", workers, "--no-progress"]


def read_results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    "Run a quick Yin-Yang reproduction with two workers, then the same command again in the same folder."
    assert SCRIPT is not None, "the console script koopman-nb is not installed; run pip install -e \".[dev]\""
    root = tmp_path_factory.mktemp("quick")
    out, cache = root / "out", root / "cache"
    first = run_cli(*quick_args(out, 2), cache=cache)
    assert first.returncode == 0, first.stderr[-4000:]
    first_results = read_results(out)
    second = run_cli(*quick_args(out, 2), cache=cache)
    assert second.returncode == 0, second.stderr[-4000:]
    return SimpleNamespace(root=root, out=out, cache=cache, first=first, second=second, results=first_results,
                           rerun=read_results(out))


def without_seconds(value):
    "Drop every timing, checkpoint path and stage record, which differ between equal runs."
    if isinstance(value, dict):
        return {k: without_seconds(v) for k, v in value.items()
                if k not in ("seconds", "train_seconds", "checkpoint", "trained")}
    if isinstance(value, list): return [without_seconds(v) for v in value]
    return value


def assert_percent(value, name):
    assert isinstance(value, float), f"{name} is {value!r}, not a float"
    assert 0.0 <= value <= 100.0, f"{name} = {value} lies outside [0, 100]"


def assert_summary(summary, name, count, low=0.0, high=100.0):
    "Check a {mean, std, values} summary with `count` values in [low, high]."
    assert set(summary) == {"mean", "std", "values"}, f"{name}: keys {sorted(summary)}"
    assert len(summary["values"]) == count, f"{name}: {len(summary['values'])} values, expected {count}"
    for v in summary["values"]: assert low <= v <= high, f"{name}: value {v} outside [{low}, {high}]"
    assert summary["mean"] == pytest.approx(sum(summary["values"]) / count), name
    assert summary["std"] >= 0, name


def test_results_top_level(quick):
    r = quick.results
    for key in ("dataset", "quick", "command", "created", "device", "seeds", "workers", "config", "notes", "network",
                "kae", "topology", "unlearning", "timings", "stages", "figures", "versions"):
        assert key in r, f"results.json lacks {key!r}"
    assert r["dataset"] == "yinyang"
    assert r["quick"] is True
    assert r["seeds"] == [0, 1]
    assert r["device"] == "cpu"
    assert r["workers"] == 2
    assert r["command"].startswith("koopman-nb reproduce yinyang ")
    assert "--quick" in r["command"]
    assert any("Quick smoke-test configuration" in note for note in r["notes"])


def test_results_configs(quick):
    config = quick.results["config"]
    assert config["quick"] is True
    assert config["target"]["epochs"] == 100
    assert config["target"]["width"] == 10
    assert config["kae"]["epochs"] == 30
    assert config["seeds"] == [0, 1]
    assert config["unlearning"]["options"]["retrain_seeds"] == [0]
    assert config["unlearning"]["groups"] == [{"forget": [2], "methods": [*BASELINES, *QUICK_RECIPES]}]


def test_results_network_and_kae(quick):
    network, kae = quick.results["network"], quick.results["kae"]
    assert_percent(network["test_accuracy"], "network.test_accuracy")
    assert len(network["test_per_class"]) == 3
    for a in network["test_per_class"]: assert_percent(a, "network.test_per_class")
    assert network["test_accuracy"] > 90, "100 epochs of the Yin-Yang recipe reach about 99 %"
    assert_summary(kae["test_accuracy"], "kae.test_accuracy", 2)
    assert_summary(kae["agreement"], "kae.agreement", 2)
    assert kae["seeds"] == [0, 1]
    assert [run["seed"] for run in kae["runs"]] == [0, 1]
    assert kae["gap_pp"] == pytest.approx(network["test_accuracy"] - kae["test_accuracy"]["mean"])
    assert kae["network_accuracy"] == pytest.approx(network["test_accuracy"])


def test_results_topology(quick):
    topo = quick.results["topology"]
    assert topo["points"] == 1000
    assert topo["network_clouds"] == LAYERS
    assert topo["kae_steps"] == list(range(0, 101, 10))
    for clouds, count in (("network", len(LAYERS)), ("kae", 11)):
        b0, b1, eps = topo[f"{clouds}_betti0"], topo[f"{clouds}_betti1"], topo[f"{clouds}_eps"]
        assert len(b0) == len(b1) == len(eps) == count, clouds
        assert all(isinstance(b, int) and b >= 1 for b in b0), f"{clouds} beta_0 {b0}"
        assert all(isinstance(b, int) and b >= 0 for b in b1), f"{clouds} beta_1 {b1}"
        assert all(e > 0 for e in eps), f"{clouds} eps {eps}"
        assert len(topo[f"{clouds}_betti_by_class"]) == count
    assert topo["network_betti0"][0] == 1, "the Yin-Yang disk is one component"
    assert [row[:1] for row in topo["network_betti_by_class"][0]] == [[1], [1], [2]], "the dots are two components"


def test_results_unlearning(quick):
    unlearning = quick.results["unlearning"]
    assert unlearning["forget_classes"] == [2]
    methods = unlearning["results"]["2"]
    assert sorted(methods) == sorted([*BASELINES, *QUICK_RECIPES])
    for method, row in methods.items():
        count = len(row["seeds"])
        for name in MEASURES:
            low, high = (0.0, 1.0) if name == "probe_auc" else (0.0, float("inf") if name == "seconds" else 100.0)
            assert_summary(row[name], f"{method}.{name}", count, low, high)
        for ua, forget in zip(row["UA"]["values"], row["forget_accuracy"]["values"]):
            assert ua == pytest.approx(100 - forget), method
    assert methods["retrain"]["seeds"] == [0]
    assert methods["retrain"]["TV"] is None, "one retrained network has no second one to compare with"
    assert methods["finetune"]["seeds"] == [0, 1]
    assert_summary(methods["finetune"]["TV"], "finetune.TV", 2, 0.0, 1.0)
    assert methods["network"]["forget_accuracy"]["mean"] > 90
    assert methods["retrain"]["forget_accuracy"]["mean"] == 0.0, "a network that never saw class 2 never predicts it"


def test_results_timings_stages_versions(quick):
    r = quick.results
    assert list(r["timings"]) == [*STAGES, "total"]
    assert all(t >= 0 for t in r["timings"].values())
    assert r["timings"]["total"] == pytest.approx(sum(r["timings"][s] for s in STAGES))
    assert list(r["stages"]) == list(STAGES)
    for name, stage in r["stages"].items():
        assert re.fullmatch(r"[0-9a-f]{16}", stage["key"]), name
        assert stage["reused"] is False, name
        assert (quick.out / stage["file"]).is_file(), name
    assert r["versions"]["koopman_nb"] == koopman_nb.__version__
    assert r["versions"]["torch"] == torch.__version__
    assert {"gudhi", "numpy", "scipy", "scikit-learn", "python"} <= set(r["versions"])


def test_figures_and_report(quick):
    figures = quick.results["figures"]
    assert len(figures) == 7
    for name, path in figures.items():
        assert (quick.out / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (quick.out / "report.md").read_text()
    assert report.startswith("# Reproduction: Yin-Yang, QUICK smoke test")
    assert "**Quick run.**" in report
    for path in figures.values(): assert f"]({path})" in report, path
    assert "| method | forget acc |" in report


def test_printed_lines(quick):
    lines = quick.first.stdout.splitlines()
    stage_lines = [line for line in lines if any(line.startswith(f"{QUICK_LABEL} {s} ") for s in STAGES)]
    assert len(stage_lines) == len(STAGES), quick.first.stdout
    assert all(" computed " in line for line in stage_lines), quick.first.stdout
    assert lines[-1].startswith(f"{QUICK_LABEL} done in ")


def test_rerun_reuses_every_stage(quick):
    again = quick.rerun
    assert {name: s["reused"] for name, s in again["stages"].items()} == dict.fromkeys(STAGES, True)
    stage_lines = [line for line in quick.second.stdout.splitlines() if line.startswith(QUICK_LABEL)][:-1]
    assert len(stage_lines) == len(STAGES)
    assert all(" reused " in line for line in stage_lines), quick.second.stdout
    assert again["timings"]["total"] < 0.1 * quick.results["timings"]["total"]
    for key in ("network", "kae", "topology", "unlearning", "figures"):
        assert again[key] == quick.results[key], key


def test_resume_recomputes_missing_stage(quick):
    "A missing or corrupted stage file is computed again; the stages around it are reused, with equal numbers."
    out = quick.root / "resume"
    shutil.copytree(quick.out, out)
    stages = quick.results["stages"]
    (out / stages["topology"]["file"]).unlink()
    (out / stages["kae"]["file"]).write_text('{"truncated": ')
    res = run_cli(*quick_args(out, 1), cache=quick.cache)
    assert res.returncode == 0, res.stderr[-4000:]
    resumed = read_results(out)
    reused = {name: s["reused"] for name, s in resumed["stages"].items()}
    assert reused == {"target": True, "kae": False, "topology": False, "unlearning": True, "figures": True}
    assert without_seconds(resumed["kae"]) == without_seconds(quick.results["kae"])
    assert resumed["topology"] == quick.results["topology"]


def test_workers_do_not_change_numbers(quick, tmp_path):
    "One process and two processes, each from an empty cache, give the same numbers."
    res = run_cli(*quick_args(tmp_path / "out", 1), cache=tmp_path / "cache")
    assert res.returncode == 0, res.stderr[-4000:]
    single = read_results(tmp_path / "out")
    assert single["workers"] == 1
    for key in ("network", "kae", "topology", "unlearning"):
        assert without_seconds(single[key]) == without_seconds(quick.results[key]), key


def test_unknown_dataset_through_console_script(tmp_path):
    res = run_cli("reproduce", "cifar", cache=tmp_path)
    assert res.returncode == 2
    assert "invalid choice: 'cifar'" in res.stderr
    assert res.stdout == ""


@pytest.mark.parametrize("args, message", [
    (["reproduce", "yinyang", "--seeds", "0"], "argument --seeds: must be a positive integer, got '0'"),
    (["reproduce", "yinyang", "--seeds", "-3"], "must be a positive integer, got '-3'"),
    (["reproduce", "yinyang", "--seeds", "two"], "must be a positive integer, got 'two'"),
    (["reproduce", "yinyang", "--retrain-seeds", "0"], "argument --retrain-seeds: must be a positive integer"),
    (["reproduce", "yinyang", "--workers", "0"], "argument --workers: must be a positive integer"),
    (["reproduce", "mnist", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["reproduce"], "the following arguments are required: dataset"),
    ([], "the following arguments are required: COMMAND"),
])
def test_invalid_arguments(args, message, capsys):
    with pytest.raises(SystemExit) as stop: main(args)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_output_path_is_a_file(tmp_path, capsys):
    a_file = tmp_path / "results.txt"
    a_file.write_text("")
    assert main(["reproduce", "yinyang", "--quick", "--out", str(a_file)]) == 2
    assert f"Output path {a_file} exists and is not a folder" in capsys.readouterr().err
    assert a_file.read_text() == ""


def test_output_folder_cannot_be_created(tmp_path, capsys):
    a_file = tmp_path / "results.txt"
    a_file.write_text("")
    assert main(["reproduce", "mnist", "--out", str(a_file / "run")]) == 2
    err = capsys.readouterr().err
    assert f"Output folder {a_file / 'run'} cannot be created or written to" in err
    assert "Pass --out with a writable folder" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_unavailable(tmp_path, capsys):
    assert main(["reproduce", "yinyang", "--quick", "--device", "cuda", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--device cuda was requested" in err
    assert "Run with --device cpu" in err
    assert not (tmp_path / "out").exists(), "the device is checked before the output folder is made"


@pytest.mark.parametrize("dataset, quick, cores, expected", [
    ("yinyang", False, 1, 1),
    ("yinyang", False, 2, 2),
    ("yinyang", False, 16, 16),
    ("mnist", False, 2, 1),
    ("mnist", False, 3, 1),
    ("mnist", False, 4, 2),
    ("mnist", False, 16, 8),
    ("yinyang", True, 16, 1),
    ("mnist", True, 16, 1),
])
def test_default_workers_fit_cores(dataset, quick, cores, expected):
    assert default_workers(reproduction_plan(dataset, quick), cores=cores) == expected


def test_default_workers_invalid_cores():
    with pytest.raises(ValueError, match="cores"):
        default_workers(reproduction_plan("yinyang"), cores=0)
