"""glibc's malloc defaults against mitobench's tuned settings, on the bare training step.

    python benchmarks/malloc_speed.py --size 224 --precision bf16
    python benchmarks/malloc_speed.py --size 224 --precision fp32 --rounds 6

One process: EfficientNet-Lite0 (random weights: the arithmetic's cost does not depend on them),
batch 32, channels-last, AdamW; the two settings alternate every `--steps` steps (ABBA order), so
the machine's drift falls on both. After the first switch, "defaults" are glibc's default values
with its adaptive mmap threshold frozen where it had grown (mallopt switches adaptation off for
the process): close to a fresh process, not the same. Whole runs in separate processes are the
check (docs/performance.md). Prints images/s and minor page faults per step, medians over
rounds, and the processor. docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time


def measure(size: int, bf16: bool, rounds: int, steps: int, settle: int = 2, batch: int = 32) -> dict:
    import timm
    import torch

    from mitobench import allocator, machine

    machine.configure_threads()
    model = timm.create_model("tf_efficientnet_lite0", num_classes=1).to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, 1)

    def step() -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            logits = model(x).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    speed: dict[str, list[float]] = {"system": [], "tuned": []}
    faults: dict[str, list[float]] = {"system": [], "tuned": []}
    for _ in range(3):
        step()
    for r in range(rounds):
        for mode in ("system", "tuned") if r % 2 == 0 else ("tuned", "system"):
            allocator.configure_allocator(mode)
            for _ in range(settle):  # untimed: the heap settles after a switch (1-9 steps seen)
                step()
            f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
            for _ in range(steps):
                step()
            speed[mode].append(steps * batch / (time.perf_counter() - t0))
            faults[mode].append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / steps)
    allocator.configure_allocator()
    med = {m: statistics.median(v) for m, v in speed.items()}
    return {
        "machine": machine.label(),
        "size": size,
        "precision": "bf16" if bf16 else "fp32",
        "images_per_second": med,
        "faults_per_step": {m: statistics.median(v) for m, v in faults.items()},
        "rounds": speed,
        "tuned_over_system": med["tuned"] / med["system"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=8, help="timed steps per round and setting")
    p.add_argument("--settle", type=int, default=2, help="untimed steps after each switch")
    p.add_argument("--out", help="write the figures as JSON")
    args = p.parse_args(argv)
    r = measure(args.size, args.precision == "bf16", args.rounds, args.steps, args.settle)
    print(f"measured on {r['machine']}: {r['size']} px {r['precision']}, batch 32")
    for mode in ("system", "tuned"):
        print(
            f"  glibc {mode:6s}: {r['images_per_second'][mode]:.1f} images/s, "
            f"{r['faults_per_step'][mode]:,.0f} minor page faults per step"
        )
    print(f"  tuned / system: {r['tuned_over_system']:.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
