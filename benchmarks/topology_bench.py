"""Benchmark Betti numbers on sparse ε-graphs (`koopman_nb.topology`) against gudhi, ripser.py and giotto-ph.

Usage: python benchmarks/topology_bench.py [--quick]

Every measurement runs in a fresh Python process, so that peak memory is measured per call and includes what
the C++ libraries allocate. The parent reads the child's `ru_maxrss` from `os.wait4`. A child's maximum resident
set size starts from its parent's size at fork, so the parent imports nothing heavy and a separate process
builds and saves the clouds. The child also reports its own `ru_maxrss` just before the call (imports and the
loaded cloud), so "extra MB" is the memory the call itself needed. Times cover the call alone. Each child gets a
wall-clock limit and an address-space limit, and runs that hit either are reported, not hidden.

Betti numbers are [beta_0, beta_1] (or [beta_0]) over Z/2 at scale eps. They count the bars born at or before
eps and still alive at eps, and every competitor's numbers are compared with ours.

Clouds: Yin-Yang points (koopman_nb.data) rotated into D dimensions by a fixed random orthogonal map plus
Gaussian noise of standard deviation 0.01, and the first n real MNIST test images (pixels / 255, 784-D).
Scales: the 1 % and 5 % quantiles of the pairwise distances of a random sample of 2000 points (seed 0).
"""
import argparse
import importlib.metadata
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MEMORY_LIMIT = 10 * 2**30  # address-space limit of each child, in bytes
CHILD = "--child"
PREPARE = "--prepare"


def machine_description():
    "Describe the CPU and the versions of the libraries compared."
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        lines = cpuinfo.read_text().splitlines()
        models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        if models: cpu = models[0]
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}"
                         for name in ("gudhi", "giotto-ph", "ripser", "numpy", "scipy"))
    return f"{os.cpu_count()} CPU cores ({cpu}); {versions}"


def count_bars(diagrams, eps):
    "Count, per dimension, the bars [b, d) with b <= eps < d."
    return [int(np.sum((np.asarray(d)[:, 0] <= eps) & (np.asarray(d)[:, 1] > eps))) if len(d) else 0
            for d in diagrams]


def run_method(method, x, eps, max_dim):
    "Compute [beta_0, ..., beta_max_dim] of `x` at `eps` with one library."
    if method == "koopman_nb":
        from koopman_nb.topology import betti_numbers
        return betti_numbers(x, eps, max_dim)
    if method == "giotto-ph":
        from gph import ripser_parallel
        return count_bars(ripser_parallel(x, maxdim=max_dim, thresh=eps, n_threads=-1)["dgms"], eps)
    if method == "ripser.py":
        from ripser import ripser
        return count_bars(ripser(x, maxdim=max_dim, thresh=eps)["dgms"], eps)
    if method == "gudhi RipsComplex":
        import gudhi
        tree = gudhi.RipsComplex(points=x, max_edge_length=eps).create_simplex_tree(max_dimension=max_dim + 1)
        tree.compute_persistence(homology_coeff_field=2, persistence_dim_max=True)
        return count_bars([tree.persistence_intervals_in_dimension(k) for k in range(max_dim + 1)], eps)
    raise ValueError(f"Unknown method {method!r}.")


def child(method, path, eps, max_dim):
    "Run one measurement in this process and print it as one JSON line."
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    x = np.load(path)
    if method == "koopman_nb": import koopman_nb.topology  # noqa: F401  (import before the clock starts)
    elif method == "giotto-ph": import gph  # noqa: F401
    elif method == "ripser.py": import ripser  # noqa: F401
    else: import gudhi  # noqa: F401
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    betti = run_method(method, x, eps, max_dim)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "betti": betti, "baseline_kb": before}), flush=True)


def measure(method, path, eps, max_dim, timeout):
    "Run one measurement in a child process; return a dict with seconds, betti, peak and extra MB, or an error."
    cmd = [sys.executable, __file__, CHILD, method, str(path), repr(eps), str(max_dim)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid: break
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            timed_out = True
            break
        time.sleep(0.05)
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = usage.ru_maxrss / 1024
    if timed_out: return {"error": f"timed out after {timeout} s", "peak_mb": peak_mb}
    if proc.returncode != 0:
        memory = any(word in err for word in ("MemoryError", "bad_alloc", "std::length_error"))
        if memory or peak_mb * 2**20 >= 0.9 * MEMORY_LIMIT:
            reason = f"out of memory ({MEMORY_LIMIT / 2**30:.0f} GB address-space limit)"
        elif proc.returncode < 0: reason = f"killed by {signal.Signals(-proc.returncode).name}"
        else: reason = f"failed with exit code {proc.returncode} ({err.strip()[-200:]})"
        return {"error": reason, "peak_mb": peak_mb}
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_mb"] = peak_mb
    result["extra_mb"] = max(0.0, peak_mb - result.pop("baseline_kb") / 1024)
    return result


def lifted_yin_yang(n, dim, seed=0, noise=0.01):
    "Yin-Yang points rotated into `dim` dimensions by a fixed random orthogonal map, plus Gaussian noise."
    from koopman_nb.data import yin_yang
    coords, _ = yin_yang(n, seed)
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    points = np.zeros((n, dim))
    points[:, :2] = coords.numpy() - 0.5
    return points @ rotation.T + noise * rng.standard_normal((n, dim))


def mnist_images(n):
    "The first n real MNIST test images as float64 points in [0, 1]^784."
    from koopman_nb.data import mnist
    images, _ = mnist("test")
    return images[:n].reshape(n, -1).astype(np.float64) / 255


def distance_quantile(x, q, sample=2000, seed=0):
    "Estimate a quantile of the pairwise distances from a random sample of points."
    from scipy.spatial.distance import pdist
    idx = np.random.default_rng(seed).choice(len(x), min(sample, len(x)), replace=False)
    return float(np.quantile(pdist(x[idx]), q))


def cloud_file(cloud):
    name, n, dim = cloud
    return f"{name}-{n}-{dim}.npy"


def prepare(folder, quick):
    "Build and save every cloud of the plan, and the scales of its runs (run in its own process)."
    clouds, runs = plan(quick)
    scales = {}
    for cloud in clouds:
        name, n, dim = cloud
        points = lifted_yin_yang(n, dim) if name == "Yin-Yang" else mnist_images(n)
        np.save(Path(folder) / cloud_file(cloud), points)
        for q in (0.01, 0.05): scales[f"{cloud_file(cloud)} {q}"] = distance_quantile(points, q)
    (Path(folder) / "scales.json").write_text(json.dumps(scales))


def skip_reason(method, n, quick):
    "Say why a competitor is not run at this size, or return None."
    if method == "ripser.py" and n >= 10000:
        return "skipped: its dense n x n distance matrix needs about 4 times the memory of the 5000-point runs"
    if method == "gudhi RipsComplex" and n >= 10000:
        return "skipped: the explicit complex already exceeds the memory limit at 5000 points and q = 0.05"
    if method == "gudhi RipsComplex" and quick and n > 1000:
        return "skipped in --quick: tens of seconds at 5000 points"
    return None


def plan(quick):
    "List the clouds (name, n, dim) and the runs (cloud, q, max_dim, methods) to measure."
    competitors = ["koopman_nb", "giotto-ph", "ripser.py", "gudhi RipsComplex"]
    if quick:
        clouds = [("Yin-Yang", 1000, 10), ("Yin-Yang", 5000, 10), ("MNIST", 1000, 784), ("MNIST", 10000, 784)]
    else:
        clouds = [("Yin-Yang", n, d) for d in (2, 10, 50) for n in (1000, 5000, 10000)]
        clouds += [("MNIST", n, 784) for n in (1000, 5000, 10000)]
    runs = []
    for cloud in clouds:
        name, n, _ = cloud
        for q in (0.01, 0.05):
            if quick and n == 10000: runs.append((cloud, q, 0, ["koopman_nb", "giotto-ph"]))
            else: runs.append((cloud, q, 1, competitors))
            if name == "MNIST" and n == 10000 and not quick: runs.append((cloud, q, 0, ["koopman_nb", "giotto-ph"]))
    return clouds, runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="four clouds only (about a minute)")
    parser.add_argument("--timeout", type=float, default=None, help="wall-clock limit per run in seconds "
                        "(default 300, or 60 with --quick)")
    args = parser.parse_args()
    timeout = args.timeout or (60 if args.quick else 300)
    clouds, runs = plan(args.quick)

    print(f"# Betti numbers: koopman_nb.topology against gudhi, ripser.py and giotto-ph"
          f"{' (--quick)' if args.quick else ''}\n")
    print(f"Machine: {machine_description()}. Each run in its own process, limit {timeout:.0f} s and "
          f"{MEMORY_LIMIT / 2**30:.0f} GB of address space. Times cover the call only; peak MB is the child's "
          "maximum resident set size, extra MB the part above its size just before the call.\n")
    print("| cloud | n | D | q | eps | edges (est.) | dims | method | time (s) | peak MB | extra MB | Betti | agrees |")
    print("|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---|---|")
    summary = {}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, __file__, PREPARE, tmp] + (["--quick"] if args.quick else []), check=True)
        scales = json.loads((Path(tmp) / "scales.json").read_text())
        paths = {cloud: Path(tmp) / cloud_file(cloud) for cloud in clouds}
        for cloud, q, max_dim, methods in runs:
            name, n, dim = cloud
            eps = scales[f"{cloud_file(cloud)} {q}"]
            edges = q * n * (n - 1) / 2
            reference = None
            for method in methods:
                head = (f"| {name} | {n} | {dim} | {q:g} | {eps:.4g} | {edges:,.0f} | "
                        f"{'β0' if max_dim == 0 else 'β0, β1'} | {method} |")
                reason = skip_reason(method, n, args.quick)
                if reason:
                    print(f"{head} – | – | – | {reason} | |", flush=True)
                    continue
                result = measure(method, paths[cloud], eps, max_dim, timeout)
                if "error" in result:
                    print(f"{head} – | {result['peak_mb']:.0f} | – | {result['error']} | |", flush=True)
                    continue
                if method == "koopman_nb": reference = result["betti"]
                agrees = ""
                if reference is not None: agrees = "yes" if result["betti"] == reference else "**NO**"
                print(f"{head} {result['seconds']:.2f} | {result['peak_mb']:.0f} | {result['extra_mb']:.0f} | "
                      f"{result['betti']} | {agrees} |", flush=True)
                summary[(name, n, dim, q, max_dim, method)] = result["seconds"]

    print()
    ours = summary.get(("Yin-Yang", 5000, 10, 0.05, 1, "koopman_nb"))
    giotto = summary.get(("Yin-Yang", 5000, 10, 0.05, 1, "giotto-ph"))
    if ours is not None and giotto is not None:
        print(f"- Goal: beta_0 and beta_1 of 5000 points in 10-D at the 5 % quantile no slower than giotto-ph: "
              f"{ours:.2f} s against {giotto:.2f} s ({'met' if ours <= giotto else 'NOT met'}).")
    for q in (0.01, 0.05):
        t = summary.get(("MNIST", 10000, 784, q, 0, "koopman_nb"))
        if t is not None:
            print(f"- Goal: beta_0 of the 10 000 MNIST test images within 3 s, q = {q:g}: {t:.2f} s "
                  f"({'met' if t <= 3 else 'NOT met'}).")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == PREPARE:
        prepare(sys.argv[2], "--quick" in sys.argv[3:])
    else:
        main()
