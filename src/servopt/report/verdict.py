"""The one recommendation of a run: which deployment to make, why, and by how much.

A run offers two shapes of the winning serving mode: identical replicas (what aiconfigurator
deploys; one engine config, trivially load-balanced) and the packed deployment (up to K replica
shapes that together use the whole GPU budget). Packed is recommended only when it buys at least
``PACKED_MIN_GAIN`` over identical replicas: below that, the second replica shape (a second
engine config, a router across unequal replicas) costs more to operate than it returns.

Works on the result document (plain dicts), so the terminal, ``--json`` and the web page all
say the same thing.
"""

from __future__ import annotations

PACKED_MIN_GAIN = 0.05


def plural(n: int, word: str) -> str:
    """``1 replica``, ``2 replicas``; ``GPU`` -> ``GPUs``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def shape(row: dict) -> str:
    """The replicas of a row: ``1 replica x 2 GPUs`` or ``1 x 1 GPU + 1 x 2 GPUs`` (packed)."""
    groups = row.get("groups")
    if groups:
        return " + ".join(f"{g['replicas']} x {plural(g['gpus_per_replica'], 'GPU')}" for g in groups)
    return f"{plural(row['replicas'], 'replica')} x {plural(row['gpus_per_replica'], 'GPU')}"


def gpu_use(row: dict) -> str:
    """``all 3 GPUs`` or ``2 of 3 GPUs``."""
    used, total = row["total_gpus_used"], row["total_gpus"]
    return f"all {plural(total, 'GPU')}" if used == total else f"{used} of {plural(total, 'GPU')}"


def _tps(row: dict) -> str:
    return f"{row['tokens_per_s_per_gpu']:,.2f} tokens/s/gpu"


def verdict(doc: dict) -> dict:
    """``{deploy, experiment, mode, headline, why, alternative}`` for a result document.

    ``deploy`` is ``"identical"`` or ``"packed"``; ``why`` lists the reasons, one line each;
    ``alternative`` is the other shape of the same mode, on its own line (None when there is no
    other: packing gains nothing)."""
    best = doc["best"]
    packed = best["packed"]
    gain = packed["gain_vs_identical"]
    name, mode = best["experiment"], best["mode"]
    who = mode if name == mode else f"{name} ({mode})"
    why: list[str] = []
    if gain >= PACKED_MIN_GAIN:
        deploy = "packed"
        headline = f"Deploy {who} as packed replicas: {_tps(packed)} on {gpu_use(packed)}"
        why.append(f"+{100 * gain:.1f}% over identical replicas, which use {gpu_use(best)}")
        alternative = f"identical replicas: {_tps(best)}, {shape(best)} on {gpu_use(best)} (simpler to run)"
    else:
        deploy = "identical"
        headline = f"Deploy {who} as identical replicas: {_tps(best)}, {shape(best)} on {gpu_use(best)}"
        if gain > 1e-9:
            why.append(
                f"packing replica shapes would gain only +{100 * gain:.1f}% "
                f"(under {100 * PACKED_MIN_GAIN:.0f}%, not worth a second engine config)"
            )
            alternative = f"packed replicas: {_tps(packed)}, {shape(packed)} on {gpu_use(packed)}"
        else:
            why.append("no packed deployment does better: identical replicas already use the budget best")
            alternative = None
    if best.get("runner_up"):
        ratio = best["ratio_vs_runner_up"]
        why.append(
            f"{who} beats {best['runner_up']} {ratio:.2f}x with identical replicas "
            f"({best['tokens_per_s_per_gpu']:,.2f} vs {best['tokens_per_s_per_gpu'] / ratio:,.2f} tokens/s/gpu)"
        )
    return {
        "deploy": deploy,
        "experiment": name,
        "mode": mode,
        "headline": headline,
        "why": why,
        "alternative": alternative,
    }


def chosen_row(doc: dict) -> dict:
    """The row of the deployment the verdict recommends."""
    best = doc["best"]
    return best["packed"] if doc["verdict"]["deploy"] == "packed" else best
