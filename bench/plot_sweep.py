#!/usr/bin/env python3
"""Turn convkit_sweep's Google Benchmark JSON into PNG figures.

    /usr/bin/python3 bench/plot_sweep.py sweep.json OUTDIR

Writes OUTDIR/sweep_times.png (time against kernel size, one panel per image size, one line per
backend) and OUTDIR/sweep_winner.png (which backend is fastest at each image x kernel size, with the
crossover between them outlined). Needs matplotlib (Debian: python3-matplotlib, for /usr/bin/python3).
"""
import json
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def load(path):
    with open(path) as f:
        data = json.load(f)
    times = defaultdict(dict)  # backend -> (image, kernel) -> seconds
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        parts = b["name"].split("/")  # sweep/<backend>/image:N/kernel:K/...
        backend = parts[1]
        args = dict(p.split(":") for p in parts[2:] if ":" in p and p.split(":")[0] in ("image", "kernel"))
        key = (int(args["image"]), int(args["kernel"]))
        times[backend][key] = b["real_time"] * UNIT[b["time_unit"]]
    return data.get("context", {}), times


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    context, times = load(sys.argv[1])
    outdir = sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    backends = sorted(b for b in times if b != "automatic")
    images = sorted({k[0] for b in backends for k in times[b]})
    kernels = sorted({k[1] for b in backends for k in times[b]})
    machine = f"{context.get('num_cpus', '?')} CPUs @ {context.get('mhz_per_cpu', '?')} MHz, " \
              f"direct ISA {context.get('direct instruction set', '?')}"

    fig, axes = plt.subplots(1, len(images), figsize=(4 * len(images), 3.6), sharey=False)
    for ax, n in zip(axes, images):
        for b in backends + (["automatic"] if "automatic" in times else []):
            ks = [k for k in kernels if (n, k) in times[b]]
            style = dict(linestyle="--", color="black", linewidth=1) if b == "automatic" else dict(marker="o")
            ax.plot(ks, [times[b][(n, k)] * 1e3 for k in ks], label=b, **style)
        ax.set_title(f"{n}x{n} image")
        ax.set_xlabel("kernel size k (k x k)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(kernels)
        ax.set_xticklabels([str(k) for k in kernels], fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("time per call (ms)")
    axes[-1].legend(fontsize=8)
    fig.suptitle(f"convkit_sweep: 'same' convolution, float, all threads ({machine})", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "sweep_times.png"), dpi=110)

    winner = [[min(backends, key=lambda b: times[b].get((n, k), float("inf"))) for k in kernels] for n in images]
    idx = [[backends.index(w) for w in row] for row in winner]
    colors = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3"][: len(backends)]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.imshow(idx, cmap=ListedColormap(colors), vmin=0, vmax=len(backends) - 1, aspect="auto", origin="lower")
    for i, n in enumerate(images):
        for j, k in enumerate(kernels):
            best = times[winner[i][j]][(n, k)]
            second = min((times[b][(n, k)] for b in backends if b != winner[i][j] and (n, k) in times[b]), default=None)
            label = winner[i][j] + (f"\n{second / best:.1f}x" if second else "")
            ax.text(j, i, label, ha="center", va="center", fontsize=7, color="white")
            # Crossover: outline cells whose right neighbour is won by another backend.
            if j + 1 < len(kernels) and winner[i][j + 1] != winner[i][j]:
                ax.axvline(j + 0.5, ymin=i / len(images), ymax=(i + 1) / len(images), color="black", linewidth=2.5)
    ax.set_xticks(range(len(kernels)))
    ax.set_xticklabels([str(k) for k in kernels])
    ax.set_yticks(range(len(images)))
    ax.set_yticklabels([f"{n}x{n}" for n in images])
    ax.set_xlabel("kernel size (black line: crossover; number: lead over the runner-up)")
    ax.set_ylabel("image size")
    ax.set_title(f"Fastest backend ({machine})", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "sweep_winner.png"), dpi=110)
    print(f"wrote {outdir}/sweep_times.png and {outdir}/sweep_winner.png")


if __name__ == "__main__":
    main()
