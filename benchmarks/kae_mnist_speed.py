"""Where the MNIST KAE's training time goes, and how fast each recipe variant trains and classifies.

Usage: python benchmarks/kae_mnist_speed.py [--quick] [--variants NAME ...]

The MNIST target network comes from `get_target("mnist")` (trained and cached on first use); `--quick` uses a
2-epoch network and 1 KAE epoch per variant for a smoke run. The paper's recipe (Aswani and Jabari,
arXiv:2505.12809) is only timed over a few steps and its 100-epoch cost extrapolated, because training it takes
hours on a CPU. Every other variant is trained
in full and evaluated on the 10 000 test images: time per epoch, total time, surrogate test accuracy, and the gap
to the network (network minus surrogate, percentage points), both on all test images and on the mean of per-class
accuracies.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from koopman_nb.kae import MNIST_DIM, KoopmanAutoencoder, evaluate_kae, fit_kae, head_affine_map, kae_losses, kae_preset, layer_times
from koopman_nb.preprocess import prepare_representations
from koopman_nb.targets import PRESETS, accuracy_report, get_target, load_target_data, parameter_groups

# name: (common dimension d of the preprocessing, KAE preset, changes to the preset, train it in full)
VARIANTS = {
    "paper": (None, "mnist_paper", {}, False),
    "paper, p=128": (None, "mnist_paper", {"latent": 128}, False),
    "paper, d=128, p=128": (MNIST_DIM, "mnist_paper", {"latent": 128}, False),
    "fast, no logit term": (MNIST_DIM, "mnist", {"logit_weight": 0.0}, True),
    "fast, logit weight 0.01": (MNIST_DIM, "mnist", {"logit_weight": 0.01}, True),
    "fast (preset mnist)": (MNIST_DIM, "mnist", {}, True),
    "fast, logit weight 1": (MNIST_DIM, "mnist", {"logit_weight": 1.0}, True),
    "fast, 60 epochs": (MNIST_DIM, "mnist", {"epochs": 60}, True),
    "fast, every layer": (MNIST_DIM, "mnist", {"supervise": "all"}, True),
}


def time_steps(reps, config, n_steps: int = 3) -> tuple[float, dict]:
    "Time `n_steps` optimiser steps of a fresh KAE (after one warm-up step); return seconds per step and an op profile."
    torch.manual_seed(0)
    names = [reps.names[0], reps.names[-1]]
    times = [0, config.k]
    states = [reps.train[n][:config.batch_size] for n in names]
    teacher = reps.train_logits[:config.batch_size]
    head_map = head_affine_map(reps) if config.logit_weight > 0 else None
    model = KoopmanAutoencoder(reps.pre.dim, config.hidden, config.latent, config.k)
    opt = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)

    def step():
        loss = kae_losses(model, states, times, config, head_map, teacher)["total"]
        opt.zero_grad(); loss.backward(); opt.step()

    torch.set_num_threads(config.threads)
    step()
    start = time.perf_counter()
    for _ in range(n_steps): step()
    per_step = (time.perf_counter() - start) / n_steps
    with torch.profiler.profile() as prof: step()
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    return per_step, {e.key: e.self_cpu_time_total / total for e in ops[:4]}


def target_net_logits(reps) -> torch.Tensor: return reps.test_logits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-epoch target network and 1 KAE epoch per variant")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help=f"variants to run, from {list(VARIANTS)}")
    args = parser.parse_args()

    target_config = replace(PRESETS["mnist"], epochs=2) if args.quick else PRESETS["mnist"]
    target = get_target(target_config, verbose=False)
    data = load_target_data(target_config)

    reps_by_dim, rows, threads = {}, [], torch.get_num_threads()
    for name in args.variants:
        dim, preset, changes, train = VARIANTS[name]
        config = kae_preset(preset, **changes)
        if args.quick: config = replace(config, epochs=1)
        if dim not in reps_by_dim: reps_by_dim[dim] = prepare_representations(target, data, dim=dim)
        reps = reps_by_dim[dim]
        steps_per_epoch = -(-len(reps.train_labels) // config.batch_size)
        per_step, profile = time_steps(reps, config)
        torch.set_num_threads(threads)
        top = ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(profile.items())[:3])
        if not train:
            epoch = per_step * steps_per_epoch
            rows.append((name, reps.pre.dim, config, per_step, epoch, epoch * config.epochs, None, None, None, top,
                         "extrapolated"))
            continue
        fitted = fit_kae(reps, config, verbose=False)
        torch.set_num_threads(threads)
        metrics = evaluate_kae(fitted.model, reps)
        gaps = (metrics["network_accuracy"] - metrics["accuracy"],
                metrics["network_mean_class_accuracy"] - metrics["mean_class_accuracy"])
        rows.append((name, reps.pre.dim, config, per_step, fitted.seconds / config.epochs, fitted.seconds,
                     metrics["accuracy"], *gaps, top, "trained"))

    net = accuracy_report(target_net_logits(reps), reps.test_labels)
    print(f"MNIST target network: {target_config.epochs} epochs, test accuracy {net['accuracy']:.2f} %, mean per-class "
          f"{net['mean_class_accuracy']:.2f} %; "
          f"{threads} torch threads outside the KAE, whose threads are set by its configuration\n")
    columns = ["variant", "d", "hidden", "p", "epochs", "supervise", "s/step", "s/epoch", "total s", "KAE acc %",
               "gap pp", "per-class gap pp", "run", "top ops"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for name, d, c, per_step, epoch, total, acc, gap, class_gap, top, how in rows:
        acc_s, gap_s, class_gap_s = ("—" if v is None else f"{v:{f}}" for v, f in
                                     ((acc, ".2f"), (gap, "+.2f"), (class_gap, "+.2f")))
        print(f"| {name} | {d} | {c.hidden} | {c.latent} | {c.epochs} | {c.supervise} | {per_step:.3f} | {epoch:.1f} | "
              f"{total:.0f} | {acc_s} | {gap_s} | {class_gap_s} | {how} | {top} |")


if __name__ == "__main__": main()
