"""Time one training step of the MNIST target network for one and two CPU threads, and print a table.

Usage: python benchmarks/targets_step_time.py [--steps N]

A step is a forward pass, the cross-entropy, the backward pass, gradient clipping and an SGD update on a batch of
128 real MNIST images, as in the training loop. Run it once on an idle machine, and once while another process
keeps one core busy (for example `python -c "while True: pass" &`), to see how the thread count behaves under load.
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from koopman_nb.data import mnist_tensors
from koopman_nb.targets import build_model, parameter_groups, preset


def time_steps(threads: int, steps: int, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    "Return the mean seconds per training step with `threads` CPU threads."
    torch.set_num_threads(threads)
    model = build_model(preset("mnist")).train()
    optimizer = torch.optim.SGD(parameter_groups(model, 5e-4), lr=0.01, momentum=0.9)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    for i in range(steps + 3):
        if i == 3: start = time.perf_counter()  # the first steps allocate buffers
        idx = order[i * batch_size:(i + 1) * batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps per thread count")
    args = parser.parse_args()
    x, y = mnist_tensors("train")
    batch_size = preset("mnist").batch_size
    steps_per_epoch = -(-len(y) // batch_size)
    print(f"{'threads':>7} | {'ms per step':>11} | {'minutes for 30 epochs':>21}")
    for threads in (1, 2):
        seconds = time_steps(threads, args.steps, x, y, batch_size)
        print(f"{threads:>7} | {1000 * seconds:>11.1f} | {seconds * steps_per_epoch * 30 / 60:>21.1f}")


if __name__ == "__main__":
    main()
