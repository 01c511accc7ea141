"""Peak memory and throughput of `adaptive-td fit`: in chunks against whole.

    python -m adaptive_td.benchmarks.memory --transitions 10000000 --out mem-out

1. Writes a Parquet file of about `--transitions` CartPole-v1 transitions
   (Gymnasium's vectorised CartPole, the noisy balancing policy of the
   `cartpole` task), collected and written a batch of episodes at a time;
   the last episode of each environment in a batch is cut mid-way (the
   fits pass --allow-unfinished).
2. Runs `adaptive-td fit` on it once per method and mode, each in a fresh
   process: streamed (`--chunk-size`, default 2^16 rows) and whole (a chunk
   size above the file's rows: everything in memory at once, which is the
   in-memory fit). The same updates either way.
3. Reads each process's peak resident memory (the kernel's `ru_maxrss` of
   that child) and wall time, and prints them side by side with their
   ratios, next to the size of the data and the floor: the peak of the same
   command on 2000 rows (JAX, XLA's compiled programs and the libraries,
   which no fit goes below).

Writes OUT/memory.md (the table) and OUT/memory.json (every number).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import click


def _peak_run(command: list[str], log_path: str) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of a child process; raises on failure."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        with open(log_path) as log:
            tail = log.read()[-2000:]
        raise click.ClickException(f"{' '.join(command)} failed:\n{tail}")
    return usage.ru_maxrss / 1024.0, seconds  # ru_maxrss is in KiB on Linux


def make_data(path: str, transitions: int, *, envs: int = 256, seed: int = 0) -> int:
    """Write about `transitions` CartPole transitions to `path`, a batch of
    `envs` environments x 4000 steps (about 10^6 transitions) at a time, the
    episodes of each batch numbered on from the last. Returns the rows."""
    import gymnasium as gym
    import pyarrow.parquet as pq

    from adaptive_td import datasets, rollouts
    from adaptive_td.envs.cartpole import BalancingPolicy

    steps = 4000
    policy = BalancingPolicy()
    tmp, rows, episodes, batch = path + ".tmp", 0, 0, 0
    writer = None
    while rows < transitions:
        env = gym.make_vec(
            "CartPole-v1", num_envs=envs, vectorization_mode="vector_entry_point"
        )
        want = min(steps, -(-(transitions - rows) // envs))
        traj = rollouts.collect(env, policy, want, seed=seed + batch)
        env.close()
        columns = datasets.transition_columns(traj)
        columns["episode_id"] = columns["episode_id"] + episodes
        table = datasets.arrow_table(columns)
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table)
        rows += table.num_rows
        episodes = int(columns["episode_id"][-1]) + 1
        batch += 1
        print(f"  {rows} transitions, {episodes} episodes", flush=True)
    writer.close()
    os.replace(tmp, path)
    return rows


@click.command()
@click.option(
    "--transitions",
    type=click.IntRange(min=1),
    default=10_000_000,
    show_default=True,
    help="Rows of the Parquet file (about).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="memory-out",
    show_default=True,
    help="Folder for the data, logs and the table.",
)
@click.option(
    "--methods",
    default="td,adaptive-td",
    show_default=True,
    help="Comma-separated --method values of adaptive-td fit.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="--steps of each fit.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=1 << 16,
    show_default=True,
    help="--chunk-size of the streamed fits.",
)
@click.option(
    "--skip-whole",
    is_flag=True,
    help="Only the streamed fits (for data too large for memory).",
)
def main(transitions, out, methods, steps, chunk_size, skip_whole):
    """Measure peak memory and time of streamed and whole fits."""
    import pyarrow.parquet as pq

    os.makedirs(out, exist_ok=True)
    data = os.path.join(out, f"cartpole-{transitions}.parquet")
    tiny = os.path.join(out, "cartpole-tiny.parquet")
    for path, size, envs in ((data, transitions, 256), (tiny, 2000, 8)):
        if not os.path.exists(path):
            print(f"writing {path} ...", flush=True)
            make_data(path, size, envs=envs)
    file = pq.ParquetFile(data, pre_buffer=False)
    rows = file.metadata.num_rows
    # The data as Arrow arrays, the most compact form in memory.
    in_memory = sum(batch.nbytes for batch in file.iter_batches())
    on_disk = os.path.getsize(data)

    def fit(method, path, size, name):
        command = [
            sys.executable, "-m", "adaptive_td.cli", "fit", "--data", path,
            "--method", method, "--steps", str(steps), "--chunk-size", str(size),
            "--allow-unfinished", "--out", os.path.join(out, name),
        ]  # fmt: skip
        print(f"{name}: {' '.join(command[3:])}", flush=True)
        peak, seconds = _peak_run(command, os.path.join(out, name + ".log"))
        print(f"  peak {peak:.0f} MiB, {seconds:.0f} s", flush=True)
        return peak, seconds

    results = []
    for method in methods.split(","):
        # The same fit on 2000 rows: JAX, the compiled programs and the
        # command, which no fit goes below.
        floor, _ = fit(method, tiny, chunk_size, f"{method}-floor")
        for mode in ("streamed", "whole"):
            if mode == "whole" and skip_whole:
                continue
            size = chunk_size if mode == "streamed" else rows + 1
            peak, seconds = fit(method, data, size, f"{method}-{mode}")
            results.append(
                dict(
                    method=method,
                    mode=mode,
                    chunk_size=size,
                    peak_mib=peak,
                    floor_mib=floor,
                    seconds=seconds,
                )
            )

    mib = 1 << 20
    lines = [
        f"Data: {rows} transitions of CartPole-v1, {in_memory / mib:.0f} MiB as "
        f"Arrow arrays in memory ({on_disk / mib:.0f} MiB Parquet on disk); "
        f"{steps} updates of batch 128 per run. 'Floor' is the peak of the same "
        "command on 2000 rows (JAX, XLA's compiled programs, the libraries).",
        "",
        "| method | mode | chunk rows | peak memory (MiB) | above the floor (MiB) "
        "| ÷ data | wall time (s) | rows/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        above = r["peak_mib"] - r["floor_mib"]
        lines.append(
            f"| {r['method']} | {r['mode']} | {r['chunk_size']} | "
            f"{r['peak_mib']:.0f} | {above:.0f} | {above * mib / in_memory:.2f} | "
            f"{r['seconds']:.0f} | {rows / r['seconds']:.3g} |"
        )
    by = {(r["method"], r["mode"]): r for r in results}
    lines.append("")
    for method in methods.split(","):
        if (method, "whole") in by:
            s, w = by[(method, "streamed")], by[(method, "whole")]
            lines.append(
                f"- {method}: streamed / whole peak memory "
                f"{s['peak_mib'] / w['peak_mib']:.2f} (above the floor "
                f"{(s['peak_mib'] - s['floor_mib']) / (w['peak_mib'] - w['floor_mib']):.2f}"
                f"), wall time {s['seconds'] / w['seconds']:.2f}"
            )
    lines.append(
        "\nWall time is the whole command: checking the file, fitting, and "
        "writing values.parquet (every row with its value) and the checkpoint; "
        "rows/s divides the file's rows by it. '÷ data' divides the memory above "
        "the floor by the data's size in memory."
    )
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(out, "memory.md"), "w") as f:
        f.write(text)
    summary = dict(
        rows=rows,
        in_memory_bytes=in_memory,
        on_disk_bytes=on_disk,
        steps=steps,
        results=results,
    )
    with open(os.path.join(out, "memory.json"), "w") as f:
        json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
