"""The SST-2 benchmark's figures, drawn from its results JSON."""

from __future__ import annotations

from pathlib import Path


def plot(result: dict, out: Path) -> list[str]:
    """Accuracy per row, and accuracy against latency; returns the file names in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, means, stds = [], [], []
    for key, variants in result["variants"].items():
        for v in variants:
            names.append(f"{key}: {v['variant']}")
            means.append(100 * v["accuracy_mean"])
            stds.append(100 * v["accuracy_std"])
    teacher = 100 * result["teacher"]["accuracy"]
    retention = result["setup"]["bars"]["retention_pct"]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.5))
    ax.barh(range(len(names)), means, xerr=stds, color="tab:blue", alpha=0.8)
    ax.axvline(teacher, color="tab:red", label=f"teacher {teacher:.2f}")
    ax.axvline(retention / 100 * teacher, color="tab:red", ls="--",
               label=f"{retention:g}% of teacher")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(min(means + [teacher]) - 2, max(means + [teacher]) + 1)
    ax.set_xlabel("SST-2 validation accuracy (%), mean ± std over seeds")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    t = result["teacher"]
    ax.scatter([t["latency_ms_b32"]], [100 * t["accuracy"]], color="tab:red", label="teacher")
    for key, s in result["students"].items():
        ax.errorbar([s["latency_ms_b32"]], [100 * s["accuracy_mean"]],
                    yerr=[100 * s["accuracy_std"]], fmt="o", capsize=3)
        ax.annotate(f"{key} ({len(s['layers'])}L)",
                    (s["latency_ms_b32"], 100 * s["accuracy_mean"]),
                    textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.set_xlabel(f"CPU latency at batch 32, {result['setup']['latency_seq_len']} tokens (ms)")
    ax.set_ylabel("SST-2 validation accuracy (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "tradeoff.png", dpi=120)
    plt.close(fig)
    return ["accuracy.png", "tradeoff.png"]
