"""The comparisons between the SST-2 benchmark's rows, computed from its results JSON,
its targets among them: those are checked against the current ``BARS`` whenever the page
is rendered, so a JSON written under other bars shows these."""

from __future__ import annotations

from collections.abc import Callable

# The targets, on the 3-seed means of the best 3-layer student and of A.
BARS = {"retention_pct": 98.5, "gain_over_A_pts": 0.0, "speedup_b32": 1.8}


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def choice_score(variant: dict) -> tuple[int, float]:
    """How the plan ranked a variant: the chosen one ran the most seeds, and among equals
    the better first-seed dev accuracy wins. A JSON written before the dev split has
    validation accuracies only; its choices were made on them."""
    first = variant.get("dev_accuracies", variant["accuracies"])[0]
    return len(variant["seeds"]), first


def chosen_on_dev(result: dict) -> bool:
    """Whether the JSON's choices were made on the dev split (else on validation)."""
    return result["setup"].get("choice_split") == "dev"


def targets(result: dict, bars: dict[str, float] = BARS) -> dict:
    """``bars`` checked on the JSON's measurements; {} without A or a 3-layer KD student."""
    chosen = result["students"]
    three = {k: v for k, v in chosen.items() if k in "BCD"}
    if "A" not in chosen or not three:
        return {}
    best_key = max(three, key=lambda k: choice_score(three[k]))
    best = three[best_key]
    gain = 100 * (best["accuracy_mean"] - chosen["A"]["accuracy_mean"])
    speedup = result["teacher"]["latency_ms_b32"] / best["latency_ms_b32"]
    return {
        "best_student": best_key,
        "retention_pct": best["retention_pct"],
        "retention_ok": best["retention_pct"] >= bars["retention_pct"],
        "gain_over_A_pts": gain, "gain_ok": gain >= bars["gain_over_A_pts"],
        "speedup_b32": speedup, "speedup_ok": speedup >= bars["speedup_b32"],
    }


def seed_caveat(result: dict) -> list[str]:
    """Single-seed rows next to multi-seed means mislead; say what the same seed gave."""
    chosen = result["students"]
    multi = {k: s for k, s in chosen.items() if len(s["seeds"]) > 1}
    if not multi or len(multi) == len(chosen):
        return []
    first = result["setup"]["seeds"][0]
    spread = max(100 * (max(s["accuracies"]) - min(s["accuracies"])) for s in multi.values())
    same_seed = ", ".join(f"{k} {pct(s['accuracies'][0])}" for k, s in multi.items())
    counts = sorted({len(s["seeds"]) for s in multi.values()})
    return [f"Rows with 1 seed are seed-{first} runs; on seed {first} alone the "
            f"{'/'.join(map(str, counts))}-seed rows scored {same_seed}. Seeds move a row by "
            f"up to {spread:.1f} pt, so compare single-seed rows with each other, not with "
            "the means.", ""]


def _first_seed(variants: dict, key: str, name: str) -> float | None:
    v = variants.get(key, {}).get(name)
    return None if v is None else v["accuracies"][0]


def _listing(title: str, scores: dict[str, float]) -> list[str]:
    if len(scores) < 2:
        return []
    return [f"- **{title}:** " + ", ".join(f"{k} {pct(v)}" for k, v in sorted(scores.items()))
            + "."]


def _grid(result: dict, b: dict[str, dict]) -> list[str]:
    """B's grid: the transfer set, the temperature and the hard-label weight, each varied
    alone around the first grid point."""
    copies = f"aug{result['setup']['grid_copies']}"

    def distill(name: str) -> dict:
        return b[name]["recipe"]

    def matching(keep: Callable[[dict], bool], label: Callable[[str], str]) -> dict:
        return {label(name): v["accuracies"][0] for name, v in b.items()
                if keep(distill(name))}

    names = list(b)
    if not names:
        return []
    base = distill(names[0])
    t, hard = base["temperature"], base["hard_weight"]
    augment = matching(lambda d: d["temperature"] == t and d["hard_weight"] == hard,
                       lambda n: n.rsplit("-", 1)[1])
    on_grid = {n for n in names if n.endswith(f"-{copies}")}
    temps = {n.split("-", 1)[0]: b[n]["accuracies"][0] for n in on_grid
             if distill(n)["hard_weight"] == hard}
    hards = {n.split("-")[1]: b[n]["accuracies"][0] for n in on_grid
             if distill(n)["temperature"] == t}
    return (_listing(f"Transfer-set augmentation (B, T={t:g}, hard {hard:g})", augment)
            + _listing(f"Temperature (B, {copies})", temps)
            + _listing(f"Hard-label weight (B, T={t:g}, {copies})", hards))


def _baseline(result: dict, variants: dict) -> list[str]:
    out = []
    a = variants.get("A", {})
    pre, tea = (_first_seed(variants, "A", f"init: {i} layers") for i in ("pretrained", "teacher"))
    if len(a) == 2 and pre is not None and tea is not None:
        out.append(f"- **Init, no KD (A):** pretrained MiniLM layers {pct(pre)}, fine-tuned "
                   f"teacher layers {pct(tea)} ({100 * (tea - pre):+.2f} pt).")
    base = result["students"].get("A")
    if base:
        teacher = result["teacher"]["accuracy"]
        bar = BARS["retention_pct"]
        need = teacher * bar / 100
        out.append(f"- **Headroom:** the baseline A keeps {base['retention_pct']:.1f}% of the "
                   f"teacher on its own; the {bar:g}% retention bar means reaching "
                   f"{pct(need)}, {100 * (need - base['accuracy_mean']):+.2f} pt from A.")
    return out


def _intermediate(result: dict, variants: dict) -> list[str]:
    out = []
    first = result["setup"]["seeds"][0]
    best_b, c, d = (result["students"].get(k) for k in "BCD")
    if best_b and c:
        out.append(f"- **Intermediate matches (C vs B's best, seed {first}):** "
                   f"{pct(c['accuracies'][0])} vs {pct(best_b['accuracies'][0])}.")
    c_weights = variants.get("C", {})
    if len(c_weights) > 1:
        out.append("- **Intermediate weight at the start, annealed to 0 (C):** " + ", ".join(
            f"{name} {pct(v['accuracies'][0])}" for name, v in c_weights.items()) + ".")
    if c and d:
        alpha = d["recipe"]["logit_loss_options"]["alpha"]
        out.append(f"- **DKD (D vs C, seed {first}):** {pct(d['accuracies'][0])} vs "
                   f"{pct(c['accuracies'][0])}. With 2 classes DKD's non-target term is "
                   f"exactly 0 and its target term is the full KL, so with alpha = {alpha:g} "
                   "D trains on the same loss as C; any difference is numerical.")
    return out


def _fidelity(result: dict) -> list[str]:
    fidelity = {key: s["teacher_agreement_mean"] for key, s in result["students"].items()}
    every = [a for vs in result["variants"].values() for v in vs for a in v["teacher_agreements"]]
    if "A" not in fidelity or len(fidelity) < 2 or not every:
        return []
    line = (f"- **Fidelity:** the baseline A predicts the teacher's class on "
            f"{100 * fidelity['A']:.1f}% of the validation sentences")
    kd = max((k for k in fidelity if k in "BCD"), key=fidelity.get, default=None)
    if kd is not None:
        moved = 100 * (fidelity[kd] - fidelity["A"])
        line += (f", the most faithful KD row ({kd}) on {100 * fidelity[kd]:.1f}% "
                 f"({moved:+.1f} pt)")
    return [line + f"; every run lies in {100 * min(every):.1f}-{100 * max(every):.1f}%. "
            "A student gains over A only on sentences where it sides with the teacher "
            "and A does not."]


def findings(result: dict, studies_page: str | None = None) -> list[str]:
    """Comparisons between rows (first-seed runs unless said); ``studies_page``, when
    written, gets a link."""
    variants = {key: {v["variant"]: v for v in vs} for key, vs in result["variants"].items()}
    out = (_baseline(result, variants) + _grid(result, variants.get("B", {}))
           + _intermediate(result, variants) + _fidelity(result))
    if out and studies_page is not None:
        out.append(f"- **Why KD gains so little here:** two controlled studies (a 2-layer "
                   f"student with more room, a teacher that never saw the students' "
                   f"sentences) in [{studies_page}]({studies_page}) "
                   "(`python scripts/bench_studies.py`).")
    return ["## What the rows show", ""] + out + [""] if out else []
