"""Where one training step of a conv model spends its time: per layer, forward and backward,
library kernels (matmuls) against XLA's own loop fusions (pads, slices, reshuffles, activations).

    uv run --locked python scripts/profile_conv_step.py [--members 1] [--steps 10] [--cpu-devices 1]

Trains figure 5's model (the study's conv VAE, scripts/bench.py) for one compiled call of `--steps`
steps under `jax.profiler`, sums each compiled op's time from the trace, and attributes an op to a
layer by the op's name scope (`aejax.nets.conv` names each layer `encoder_conv<i>` and
`decoder_deconv<i>`; the backward pass is the `transpose(...)` of it). Ops outside the conv layers
(dense layers, loss, Adam) are grouped by their last primitive. Times are per step of the whole
population. The table in README Speed ("where a step's time goes") comes from this script.

Three kinds of op: YNNPACK kernels (`ynn_fusion`: matmuls, some reductions), Eigen matmuls (`dot`; a
custom call would count here too) and XLA's own loops. XLA gives YNNPACK only matmuls whose left operand
is contracted on its last axis, so every weight gradient (a contraction over the batch's pixels, the first
axis of both operands) goes to Eigen, which runs it asynchronously: the trace records its launch (a 606
MFLOP weight gradient shows as 0.1 ms) and its work is done while the next ops run, which it slows. The Eigen column therefore understates, and the loops
column (and the next layer's rows) overstate; only their sum and the untraced wall time are firm. With
`--cpu-devices 2` and several members, two members' ops also overlap and the sum exceeds the wall time.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import sys
import tempfile
import time

if "--cpu-devices" not in sys.argv:
    sys.argv += ["--cpu-devices", "1"]  # read by bench when it is imported, before JAX starts

import jax
import jax.numpy as jnp

from bench import CONV_BATCH, CONV_STEPS_PER_EPOCH, STUDY_VAE, build, random_binary

LAYER = re.compile(r"(encoder_conv\d+|decoder_deconv\d+)")


def op_names(compiled_text: str) -> dict:
    """HLO instruction name -> the jax name scope (`op_name`) it came from."""
    return dict(re.findall(r"^\s*(?:ROOT )?%(\S+) = .*?op_name=\"([^\"]*)\"", compiled_text, re.M))


def op_seconds(trace_dir: str) -> dict:
    """Instruction name -> total seconds over the trace (thunk and runtime wrappers left out)."""
    [path] = glob.glob(f"{trace_dir}/plugins/profile/*/perfetto_trace.json.gz")
    totals = collections.defaultdict(float)
    for event in json.load(gzip.open(path))["traceEvents"]:
        name = event.get("name", "")
        if event.get("ph") == "X" and not name.startswith("$") and "Thunk" not in name and "Slinky" not in name:
            totals[name] += event.get("dur", 0) * 1e-6
    return totals


def breakdown(seconds: dict, scopes: dict) -> dict:
    """(row, kind) -> seconds; a row is a layer and direction, or `other: <primitive>`; a kind is "ynn",
    "eigen" or "loops"."""
    rows = collections.defaultdict(float)
    for name, t in seconds.items():
        scope = scopes.get(name)
        if scope is None:
            continue
        layer = LAYER.search(scope)
        row = (f"{layer.group(1)} {'backward' if 'transpose(' in scope else 'forward'}" if layer
               else f"other: {scope.split('/')[-1]}")
        kind = "ynn" if name.startswith("ynn_fusion") else "eigen" if name.startswith(("dot", "custom-call")) else "loops"
        rows[row, kind] += t
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cpu-devices", type=int, default=1, help="XLA CPU devices the members are split over")
    args = parser.parse_args()
    if not 0 < 3 * args.steps <= CONV_STEPS_PER_EPOCH:  # three calls, all inside the first epoch
        parser.error(f"--steps must be between 1 and {CONV_STEPS_PER_EPOCH // 3}, got {args.steps}")
    x = jnp.asarray(random_binary(CONV_BATCH * CONV_STEPS_PER_EPOCH, 64 * 64))
    program, state, keys, hp = build(STUDY_VAE, x.shape[1], len(x), CONV_BATCH, list(range(args.members)), False,
                                     image_shape=(64, 64, 1), learning_rate=1e-4)
    program = program.lower(state, keys, x, hp, 0, 1, args.steps).compile()  # as aejax-train compiles it
    call = lambda state, first: program(state, keys, x, hp, first)
    state, terms = call(state, 0)  # warm-up
    jax.block_until_ready(terms)
    tic = time.perf_counter()
    state, terms = call(state, args.steps)
    jax.block_until_ready(terms)
    wall = (time.perf_counter() - tic) / args.steps
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
        state, terms = call(state, 2 * args.steps)
        jax.block_until_ready(terms)
        jax.profiler.stop_trace()
        seconds = op_seconds(trace_dir)
    rows = breakdown(seconds, op_names(program.as_text()))
    kinds = ("ynn", "eigen", "loops")
    per_step = collections.defaultdict(lambda: dict.fromkeys(kinds, 0.0))
    for (row, kind), t in rows.items():
        per_step[row][kind] += t / args.steps
    print(f"E = {args.members}, batch {CONV_BATCH}, {jax.device_count()} CPU device(s): {wall * 1e3:.1f} ms a "
          f"population step untraced, {sum(sum(k.values()) for k in per_step.values()) * 1e3:.1f} ms of ops "
          f"a step traced")
    print(f"{'':34}{'ms':>7}{'YNNPACK':>9}{'Eigen':>9}{'loops':>9}")

    def line(name: str, times: dict) -> None:
        print(f"{name:34}{sum(times.values()) * 1e3:7.2f}" + "".join(f"{times[k] * 1e3:9.2f}" for k in kinds))

    totals = {group: dict.fromkeys(kinds, 0.0) for group in ("conv layers", "other")}
    for row, times in sorted(per_step.items(), key=lambda kv: -sum(kv[1].values())):
        for kind in kinds:
            totals["other" if row.startswith("other") else "conv layers"][kind] += times[kind]
        if sum(times.values()) >= 0.05e-3:  # the rest are scalars and bookkeeping
            line(row, times)
    for group, times in totals.items():
        line(f"total: {group}", times)


if __name__ == "__main__":
    main()
