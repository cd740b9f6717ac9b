"""Time `koopman-nb reproduce` stage by stage and compare its wall time with the budget.

Usage: python benchmarks/reproduce_bench.py {yinyang,mnist} [--quick] [--cold] [--seeds N] [--workers N]

The command runs in a fresh temporary output folder, so every stage is computed. With --cold it also gets an empty
checkpoint cache that contains only the verified MNIST files, so the network, the autoencoders and the retrained
networks are all trained. Without --cold, checkpoints that earlier runs cached are loaded. A second run in the same
folder checks that every stage is then reused. Run it alone on the machine, for example under `flock`, so that no other work shares
the CPU. Budgets: 3 minutes for the full Yin-Yang run, 30 minutes for the full MNIST run, 1 minute for a quick run.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from koopman_nb.data import CACHE_ENV, cache_dir

BUDGETS = {("yinyang", False): 180, ("mnist", False): 1800, ("yinyang", True): 60, ("mnist", True): 60}


def run(args: list, env: dict) -> tuple[float, dict]:
    "Run the console script; return its wall time and its results.json."
    start = time.perf_counter()
    res = subprocess.run(["koopman-nb", *map(str, args)], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if res.returncode != 0: sys.exit(f"koopman-nb failed with exit status {res.returncode}:\n{res.stderr[-4000:]}")
    out = Path(args[args.index("--out") + 1])
    return seconds, json.loads((out / "results.json").read_text())


def cold_cache(folder: Path) -> Path:
    "Create an empty checkpoint cache that holds a copy of the verified MNIST files, so nothing is downloaded."
    cache = folder / "cache"
    shutil.copytree(cache_dir("mnist"), cache / "mnist")
    return cache


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=("yinyang", "mnist"))
    parser.add_argument("--quick", action="store_true", help="time the quick configuration")
    parser.add_argument("--cold", action="store_true", help="start from an empty checkpoint cache")
    parser.add_argument("--seeds", type=int, help="KAE seeds (default: the command's)")
    parser.add_argument("--workers", type=int, help="processes (default: the command's)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="reproduce-bench-") as folder:
        env = dict(os.environ)
        if args.cold: env[CACHE_ENV] = str(cold_cache(Path(folder)))
        command = ["reproduce", args.dataset, "--out", Path(folder) / "out", "--no-progress"]
        if args.quick: command.append("--quick")
        if args.seeds: command += ["--seeds", args.seeds]
        if args.workers: command += ["--workers", args.workers]
        wall, results = run(command, env)
        rerun_wall, rerun = run(command, env)

    budget = BUDGETS[(args.dataset, args.quick)]
    cache = "empty (cold)" if args.cold else "the existing checkpoint cache (warm)"
    print(f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch "
          f"{torch.__version__}. Command: `{results['command']}`, checkpoint cache: {cache}.\n")
    print("| stage | first run | seconds | second run | seconds |")
    print("|---|---|---:|---|---:|")
    for name, stage in results["stages"].items():
        again = rerun["stages"][name]
        print(f"| {name} | {'reused' if stage['reused'] else 'computed'} | {stage['seconds']:.1f} | "
              f"{'reused' if again['reused'] else 'computed'} | {again['seconds']:.1f} |")
    print(f"| stages in total | | {results['timings']['total']:.1f} | | {rerun['timings']['total']:.1f} |")
    print(f"| wall time of the command | | {wall:.1f} | | {rerun_wall:.1f} |")
    verdict = "within" if wall <= budget else "over"
    print(f"\nBudget {budget} s: the first run took {wall:.0f} s, {verdict} the budget. Second run: "
          f"{'every stage reused' if all(s['reused'] for s in rerun['stages'].values()) else 'NOT all stages reused'}.")


if __name__ == "__main__":
    main()
