"""Train the target-network presets and print their accuracy and training time as a table.

Usage: python benchmarks/targets_recipes.py [PRESET ...] [--retrain]

Without `--retrain`, a preset whose checkpoint is already cached is loaded, and the table shows the accuracy and
training time recorded when it was trained. With `--retrain`, every preset is trained afresh, and the new run
replaces its cached checkpoint. The time is the wall time of the training loop (including the per-epoch
evaluation), on the CPU threads the configuration names. Run it alone on the machine, for example under
`flock /tmp/koopman_cpu.lock`, so that other jobs do not slow it down.
"""
import argparse
import platform

import torch

from koopman_nb.targets import PRESETS, checkpoint_path, get_target


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="*", default=list(PRESETS), help="preset names (default: all)")
    parser.add_argument("--retrain", action="store_true", help="train afresh even when a checkpoint exists")
    args = parser.parse_args()
    unknown = [p for p in args.presets if p not in PRESETS]
    if unknown: parser.error(f"unknown presets {unknown}; choose from {sorted(PRESETS)}")

    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads available")
    header = ("preset", "epochs", "batch", "peak lr", "shift", "threads", "train %", "test %", "test mean-class %",
              "seconds")
    rows = []
    for name in args.presets:
        config = PRESETS[name]
        if args.retrain: checkpoint_path(config).unlink(missing_ok=True)
        target = get_target(config, verbose=False)
        m = target.metrics
        rows.append((name, config.epochs, config.batch_size, config.lr, config.max_shift, config.threads,
                     f"{m['train_accuracy']:.2f}", f"{m['test_accuracy']:.2f}", f"{m['test_mean_class_accuracy']:.2f}",
                     f"{m['seconds']:.1f}"))
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print(" | ".join(str(v).rjust(w) for v, w in zip(row, widths)))


if __name__ == "__main__":
    main()
