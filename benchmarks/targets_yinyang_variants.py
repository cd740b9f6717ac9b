"""Train variants of the Yin-Yang recipe and print their accuracies and training times as a table.

Usage: python benchmarks/targets_yinyang_variants.py

Each variant changes a few fields of the `yinyang_paper` preset. Runs are not cached. Training is deterministic for
a given configuration and thread count, so the accuracies repeat exactly; the times depend on the machine and its
load. The `yinyang` preset was chosen as the variant with the highest validation accuracy.
"""
from dataclasses import replace

from koopman_nb.targets import preset, train_target

VARIANTS = [
    {},
    {"seed": 1},
    {"lr": 0.03, "weight_decay": 0.0},
    {"lr": 0.03, "weight_decay": 0.0, "seed": 1},
    {"epochs": 4000},
    {"epochs": 5000, "lr": 0.03, "weight_decay": 0.0},
    {"epochs": 4000, "batch_size": 1024, "lr": 0.05},
    {"epochs": 5000, "batch_size": 1024, "lr": 0.02},
]


def main():
    print(f"{'changes to yinyang_paper':<52} | {'train %':>7} | {'val %':>6} | {'test %':>6} | {'seconds':>7}")
    for changes in VARIANTS:
        target = train_target(replace(preset("yinyang_paper"), **changes), checkpoint=False, verbose=False)
        m = target.metrics
        label = ", ".join(f"{k}={v}" for k, v in changes.items()) or "(none)"
        print(f"{label:<52} | {m['train_accuracy']:>7.2f} | {m['val_accuracy']:>6.2f} | {m['test_accuracy']:>6.2f} | "
              f"{m['seconds']:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
