"""Where a population of SAEs spends its step: figure 7b's program (scripts/bench_sae.py) under `jax.profiler`.

    uv run --locked python scripts/profile_sae_step.py [--arch relu|topk] [--shuffle sort|feistel] [--hlo FILE]

Builds the population of figure 7b (16 SAEs 64 -> 256 on 102,400 synthetic rows, batch 1,024, k 4..16 or lambda
0.25..4 per member, one XLA CPU device per core), times three whole-epoch calls, then traces one more and sums
each compiled op's time from the trace (ms per step, all devices together: with two devices the sum is about twice
the wall time, less the time the device threads wait). Ops are named as in the compiled HLO, which `--hlo` writes,
so a fusion's name leads to what it computes: `ynn_fusion` and `dot` are matmuls (YNNPACK, Eigen), `sort` is the
epoch's shuffle (trainer.shuffle=sort), `while` the k-th largest search, the rest XLA's loops. This is how the
SAE step's costs in docs/speed.md ("Figure 7, session 33") were found.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import sys
import tempfile
import time

if "jax" not in sys.modules:  # one XLA CPU device per core, as figure 7 runs
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={os.cpu_count()}")

import jax

from bench_sae import AejaxSide, make_rows, spread

STEPS = 100  # one epoch of the rows below: the calls aejax-train makes at these sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="relu", choices=("relu", "topk"))
    parser.add_argument("--shuffle", default="sort", choices=("sort", "feistel"))
    parser.add_argument("--top", type=int, default=25, help="ops to list")
    parser.add_argument("--hlo", help="also write the compiled program's text here")
    args = parser.parse_args()

    model, x, _, _ = make_rows(512, 64, 1024 * STEPS, 1000)
    name, values = ("k", spread(4, 16, 16, True)) if args.arch == "topk" else \
        ("sparsity_coefficient", spread(0.25, 4, 16, False))
    side = AejaxSide(args.arch, 256, x, 1024, 1e-3, STEPS, range(16), {name: values}, shuffle=args.shuffle)
    side()
    times = []
    for _ in range(3):
        tic = time.perf_counter()
        side()
        times.append(time.perf_counter() - tic)
    print(f"{args.arch}, trainer.shuffle={args.shuffle}: ms a step of 16 SAEs, three calls: "
          + ", ".join(f"{1000 * t / STEPS:.2f}" for t in times))
    if args.hlo:
        with open(args.hlo, "w") as f:
            f.write(side.program.as_text())

    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            side()
        trace = glob.glob(f"{folder}/**/*.trace.json.gz", recursive=True)[0]
        events = json.load(gzip.open(trace))["traceEvents"]
    total, calls = collections.Counter(), collections.Counter()
    for event in events:
        name = event.get("name", "")
        if event.get("ph") == "X" and not name.startswith(("$", "ThunkExecutor", "Pjit", "ThreadpoolListener")):
            total[name] += event["dur"]
            calls[name] += 1
    print(f"all ops: {sum(total.values()) / 1000 / STEPS:.1f} ms a step (all devices)")
    print(f"{'ms/step':>9}  {'calls':>6}  op (all devices, traced call)")
    for name, micros in total.most_common(args.top):
        print(f"{micros / 1000 / STEPS:9.3f}  {calls[name]:6d}  {name[:100]}")


if __name__ == "__main__":
    main()
