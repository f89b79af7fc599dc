"""`make bench`: run every benchmark (one process each, one thread) and write benchmarks/results.md.

    python benchmarks/run_all.py            # the full set, about 4 minutes on 2 CPU cores
    python benchmarks/run_all.py --quick    # fewer repeats: a smoke test (writes to the temp folder, not here)
    python benchmarks/gpu_vilt.py           # not in `make bench`: its ViLT epoch and Gram share on a GPU in bf16 (results-gpu.md)

Each benchmark prints its figures as one JSON line; they are kept in results.json beside
results.md. Comparisons are measured side by side inside one process (interleaved rounds,
medians, ratios per round), so a busy machine slows both sides of a ratio alike.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BENCHMARKS = {  # script -> (full arguments, --quick arguments)
    "bench_epoch.py": (["--epochs", "6", "--repeats", "15"], ["--epochs", "3", "--repeats", "2", "--profile-epochs", "2"]),
    "bench_epoch_vilt.py": (["--epochs", "4", "--repeats", "9"], ["--epochs", "2", "--repeats", "2"]),
    "bench_gram_share.py": (["--repeats", "15", "--number", "20"], ["--repeats", "3", "--number", "5"]),
    "bench_single_modality.py": (["--repeats", "15", "--number", "10"], ["--repeats", "3", "--number", "3"]),
    "bench_scaling.py": (["--repeats", "7"], ["--repeats", "2"]),
    "bench_fit_memory.py": ([], []),
}
GOALS = {"epoch_ratio": 1.10, "vilt_epoch_ratio": 1.05, "gram_share": 0.03, "cache_speedup": 1.5, "batched_speedup": 1.5}


def run(script: str, args: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{script} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1])
    result["seconds"] = time.perf_counter() - started
    print(f"{script}: {result['seconds']:.0f} s (load {result['load_before']} -> {result['load_after']})", flush=True)
    return result


def previous_figures(saved: dict | None) -> dict:
    """The headline figures of the previous `make bench` (its results.json), where it has them."""
    if not saved:
        return {}
    figures = {}
    try:
        figures["epoch_ratio"] = f"{saved['epoch']['ratio_vs_hand']['distill']:.2f}"
        figures["cache_ratio"] = f"{saved['epoch']['ratio_vs_hand']['cache_memory']:.2f}"
        g = saved["gram_share"]
        term = g.get("in_distill_module")
        figures["gram_share"] = (
            f"{pct(term['online']['share'])} online / {pct(term['cached']['share'])} cached"
            if term
            else f"{pct(g['share']['share_cached'])} cached / {pct(g['share']['share_online'])} online (`gram_loss` alone, of the hand step)"
        )
        if "epoch_vilt" in saved:
            figures["vilt_ratio"] = f"{saved['epoch_vilt']['ratio_vs_hand']['distill']:.2f}"
    except (KeyError, TypeError):
        pass
    return figures


def before_cell(before: dict, key: str) -> str:
    return f"{before.get(key, '—')} | " if before else ""


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def ratio_interval(m: dict, name: str = "distill") -> str:
    """`; 95 % interval a–b`: the bootstrap interval of a median per-round ratio (empty for older figures)."""
    interval = m.get("ratio_vs_hand_ci95", {}).get(name)
    return f"; 95 % interval of the median over {m['rounds']} rounds {interval[0]:.2f}–{interval[1]:.2f}" if interval else ""


def fastest_ratio(m: dict) -> str:
    """`; fastest epochs 1.07`: each variant's quickest epoch over all rounds, DistillModule ÷ hand loop (empty for older figures)."""
    fastest = m.get("fastest_ratio_vs_hand", {}).get("distill")
    return f"; fastest epochs {fastest:.2f}" if fastest is not None else ""


def ratio_verdict(m: dict, goal: float) -> str:
    """met / missed by the median ratio, and whether the goal lies inside its 95 % interval."""
    interval = m.get("ratio_vs_hand_ci95", {}).get("distill")
    inside = interval is not None and interval[0] <= goal <= interval[1]
    return verdict(m["ratio_vs_hand"]["distill"] <= goal) + (" (the goal lies inside the 95 % interval)" if inside else "")


def render(machine: dict, r: dict, total_s: float, quick: bool, before: dict | None = None) -> str:
    """results.md from the benchmarks' figures `r`; `before`: the previous run's headline figures."""
    e, v, g, s, sc, f = r["epoch"], r["epoch_vilt"], r["gram_share"], r["single_modality"], r["scaling"], r["fit_memory"]
    epoch_ratio, vilt_ratio = e["ratio_vs_hand"]["distill"], v["ratio_vs_hand"]["distill"]
    term = g["in_distill_module"]
    share_online, share_cached = term["online"]["share"], term["cached"]["share"]
    cache_speedup = e["cache_speedup_steady"]
    batched = s["speedup"]["student fwd+bwd + teacher fwd"]
    before = before or {}
    lines = [
        "# gramkd benchmarks",
        "",
        f"Written by `make bench` (`python benchmarks/run_all.py`{' --quick' if quick else ''}) in {total_s / 60:.1f} min.",
        "",
        f"**Machine:** {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, torch {machine['torch']}, "
        f"Lightning {machine['lightning']}; OMP_NUM_THREADS=1 (one thread per benchmark process); {machine['date']}. "
        + (
            "Every benchmark process keeps the memory it frees, as `gramkd fit` does (`keep_freed_memory: true`; the hand "
            "loop and the modules share that allocator)."
            if machine.get("freed_memory_kept")
            else "glibc's own malloc policy (BENCH_GLIBC_TRIMS=1, or no glibc): freed memory goes back to the OS."
        ),
        f"**Load (`uptime`):** {machine['load']} at the start, {r['fit_memory']['load_after']} at the end"
        + (
            " — other work was running on this 2-core machine (load ≥ 1), so absolute times are inflated;"
            " every ratio below was measured side by side in one process (interleaved rounds, median of per-round ratios)."
            if float(machine["load"].split(",")[0]) >= 1
            else "."
        ),
        *(
            [f"Other processes running when the benchmarks started: {'; '.join(f'`{b}`' for b in machine['busy'])}."]
            if machine["busy"]
            else []
        ),
        "No GPU was available for these figures (CPU only).",
        "",
        "## Summary",
        "",
        f"| # | measure | goal | measured | {'previous `make bench` | ' if before else ''}|",
        f"| --- | --- | --- | --- | {'--- | ' if before else ''}--- |",
        f"| 1 | DistillModule epoch ÷ hand-written PyTorch loop (kd_gram, mfeat, same math, batches, init; teacher online) "
        f"| ≤ 1.10 | {epoch_ratio:.2f} ({1000 * e['epoch_s']['distill']:.0f} vs {1000 * e['epoch_s']['hand']:.0f} ms/epoch; CPU clock "
        f"{e['ratio_vs_hand_cpu']['distill']:.2f}; a bare LightningModule {e['ratio_vs_hand']['bare']:.2f}{ratio_interval(e)}{fastest_ratio(e)}) "
        f"| {before_cell(before, 'epoch_ratio')}{ratio_verdict(e, GOALS['epoch_ratio'])} |",
        f"| 1b | the same with the default `teacher_cache=memory` ÷ hand loop (online teacher) | | "
        f"{e['ratio_vs_hand']['cache_memory']:.2f} | {before_cell(before, 'cache_ratio')}|",
        f"| 1c | DistillModule epoch ÷ hand loop, ViLT student and ViLT teacher (digits_nlvr batches of 64; teacher online) "
        f"| ≤ 1.05 | {vilt_ratio:.2f} ({1000 * v['epoch_s']['distill']:.0f} vs {1000 * v['epoch_s']['hand']:.0f} ms/epoch; CPU clock "
        f"{v['ratio_vs_hand_cpu']['distill']:.2f}; a bare LightningModule {v['ratio_vs_hand']['bare']:.2f}{ratio_interval(v)}{fastest_ratio(v)}) "
        f"| {before_cell(before, 'vilt_ratio')}{ratio_verdict(v, GOALS['vilt_epoch_ratio'])} |",
        f"| 2 | Gram term (forward + backward) ÷ training step with the teacher's forward, batch 64, as the DistillModule runs it (mfeat) | ≤ 3 % | "
        f"{pct(share_online)} with the teacher online ({term['online']['term_ms']:.2f} of {term['online']['step_ms']:.1f} ms; "
        f"of the hand-written step {pct(g['share']['share_online'])}); with the teacher cache, the default, whose step has no "
        f"teacher forward: {pct(share_cached)} ({term['cached']['term_ms']:.2f} of {term['cached']['step_ms']:.1f} ms; of the "
        f"hand-written step {pct(g['share']['share_cached'])}) "
        f"| {before_cell(before, 'gram_share')}{verdict(share_online <= GOALS['gram_share'])} |",
        f"| 3 | epoch, teacher cache (memory) vs online teacher, losses bit-identical "
        f"| ≥ 1.5× | {cache_speedup:.2f}× after the first epoch; first epoch {e['cache_speedup_first_epoch']:.2f}×; "
        f"30 training epochs ≈ {e['cache_speedup_full_fit_estimate']:.2f}×; losses bit-identical: {'yes' if all(e['losses_identical'].values()) else 'NO'} "
        f"| {'| ' if before else ''}{verdict(cache_speedup >= GOALS['cache_speedup'])} |",
        f"| 4 | single-modality forwards at M = 6, batched ÷ looped (student fwd+bwd + teacher fwd) "
        f"| ≥ 1.5× | {batched:.2f}× (student alone {s['speedup']['student fwd+bwd']:.2f}×, teacher alone {s['speedup']['teacher fwd (no_grad)']:.2f}×) "
        f"| {'| ' if before else ''}{verdict(batched >= GOALS['batched_speedup'])} |",
        f"| 5 | peak RSS of `make fit` (`{f['command']}`) | — | {f['cold']['peak_rss_mb']:.0f} MB cold cache "
        f"(teacher + scratch + distilled student, {f['cold']['wall_s']:.0f} s), {f['warm']['peak_rss_mb']:.0f} MB warm ({f['warm']['wall_s']:.0f} s) | {'| ' if before else ''}|",
        f"| 5 | training step, M = 1 → 16 modalities (batch 64, cached teacher) | — | "
        f"{sc['by_modalities']['1']['cached_ms']:.1f} → {sc['by_modalities']['16']['cached_ms']:.1f} ms "
        f"(online teacher {sc['by_modalities']['1']['online_ms']:.1f} → {sc['by_modalities']['16']['online_ms']:.1f} ms) | {'| ' if before else ''}|",
        f"| 5 | training step, batch 32 → 1024 (mfeat views, cached teacher) | — | "
        f"{sc['by_batch_size']['32']['cached_ms']:.1f} → {sc['by_batch_size']['1024']['cached_ms']:.1f} ms "
        f"({sc['by_batch_size']['32']['cached_us_per_sample']:.0f} → {sc['by_batch_size']['1024']['cached_us_per_sample']:.0f} µs per sample) | {'| ' if before else ''}|",
        "",
    ]
    lines += section_epoch(e)
    lines += section_vilt(v)
    lines += section_gram(g, sc)
    lines += section_cache(e, g)
    lines += section_single(s)
    lines += section_scaling(f, sc)
    lines += [
        "## Timings of this run",
        "",
        "| benchmark | seconds | load before → after |",
        "| --- | ---: | --- |",
        *[f"| {name} | {x['seconds']:.0f} | {x['load_before']} → {x['load_after']} |" for name, x in r.items()],
        "",
        "The raw figures are in `benchmarks/results.json`.",
        "",
    ]
    return "\n".join(lines)


EPOCH_LABELS = {
    "hand": "hand-written PyTorch loop (teacher under no_grad every step)",
    "bare": "LightningModule with only that math (no logging, no metrics)",
    "distill": "**DistillModule**, `teacher_cache=off` (identical math to the hand loop)",
    "distill_nolog": "DistillModule with `self.log`/`self.log_dict` made no-ops",
    "distill_nolog_nometrics": "… and without the train metrics",
    "cache_memory": "DistillModule, `teacher_cache=memory` (the config's default)",
    "cache_disk": "DistillModule, `teacher_cache=disk` (filled by an earlier fit: no misses)",
}


def epoch_table(e: dict) -> list[str]:
    fastest = "fastest_epoch_s" in e  # older figures lack it
    out = [
        "| variant | ms / epoch | ÷ hand loop | ÷ hand loop, CPU clock | "
        + ("fastest epoch (ms) | ÷ hand loop's fastest | " if fastest else "")
        + "first epoch (ms) | whole `fit()` call (ms) |",
        "| --- | ---: | ---: | ---: | " + ("---: | ---: | " if fastest else "") + "---: | ---: |",
    ]
    for name in e["epoch_s"]:
        quickest = f"{1000 * e['fastest_epoch_s'][name]:.1f} | {e['fastest_ratio_vs_hand'][name]:.2f} | " if fastest else ""
        out.append(
            f"| {EPOCH_LABELS[name]} | {1000 * e['epoch_s'][name]:.1f} | {e['ratio_vs_hand'][name]:.2f} | {e['ratio_vs_hand_cpu'][name]:.2f} "
            f"| {quickest}{1000 * e['first_epoch_s'][name]:.1f} | {1000 * e['fit_wall_s'][name]:.0f} |"
        )
    return out


def section_epoch(e: dict) -> list[str]:
    ms = {k: 1000 * v for k, v in e["epoch_s"].items()}
    out = [
        "## 1. A DistillModule epoch against a hand-written loop",
        "",
        f"`benchmarks/bench_epoch.py`. The real `experiment=mfeat/kd_gram` config: mfeat split ({e['train_rows']} training rows, "
        f"batch {e['batch_size']}, {e['steps_per_epoch']} steps per epoch), student preset ({e['student_params']:,} parameters), "
        f"teacher preset ({e['teacher_params']:,} parameters, random weights), KD T=4 + centred cosine Gram (weight 0.1), "
        "AdamW lr 1e-2 with the per-epoch cosine schedule. Every variant starts from the same student weights and reads the same "
        f"batches in the same order; their losses were compared step by step ({e['steps_compared']} steps per fit, every fit): "
        f"bit-identical in every variant: {'yes' if all(e['losses_identical'].values()) else 'NO'}. Lightning runs without progress bar, model "
        "summary, checkpointing, logger or validation, but with everything DistillModule always does (the per-step values at "
        "Lightning's `log_every_n_steps` cadence, their epoch means, the train accuracy/F1 and the term weights once per epoch). "
        f"{e['rounds']} rounds of one {e['epochs_per_fit']}-epoch fit per variant, order rotating; epoch time = median over epochs 2… "
        "of one epoch start to the next; table: median over rounds. The CPU clock (the process's CPU time) leaves out the time "
        "other processes held the core."
        + (
            " The fastest epoch is each variant's quickest over all rounds: a shared machine can switch between speeds from one "
            "round to the next, or within one, and the fastest epochs compare the variants at the machine's quickest."
            if "fastest_epoch_s" in e
            else ""
        ),
        "",
        *epoch_table(e),
        "",
        f"**Where the time goes** (differences of the side-by-side medians, per training step; the hand loop's step is "
        f"{ms['hand'] / e['steps_per_epoch']:.1f} ms):",
        "",
        "| cost per step | ms | ms, CPU clock |",
        "| --- | ---: | ---: |",
        *[f"| {k} | {v:+.2f} | {e['overhead_cpu_ms_per_step'][k]:+.2f} |" for k, v in e["overhead_ms_per_step"].items()],
        "",
        "cProfile of one DistillModule fit (`teacher_cache=off`), cumulative time per training step. Profiling inflates "
        "Python-heavy code (here: the logging), so read these as proportions:",
        "",
        "| function | ms / step (profiled) |",
        "| --- | ---: |",
        *[f"| {'… ' * ((len(k) - len(k.lstrip())) // 2)}{k.strip()} | {v:.2f} |" for k, v in e["profile"]["ms_per_step"].items()],
        "",
        f"Lightning `self.log` calls per training step: {e['profile']['log_calls_per_step']:.2f}; the module's own `log_values` "
        f"calls (one per logging event, all its values at once): {e['profile'].get('log_values_calls_per_step', 0):.2f}.",
        "",
    ]
    o = e["overhead_ms_per_step"]
    if e["ratio_vs_hand"]["distill"] > GOALS["epoch_ratio"]:
        out += [
            f"**Goal missed by {100 * (e['ratio_vs_hand']['distill'] / GOALS['epoch_ratio'] - 1):.0f} %** "
            f"({e['ratio_vs_hand']['distill']:.2f} against 1.10{ratio_interval(e)}). Of the {o['distill - hand']:.1f} ms per step over the hand loop, "
            f"Lightning's own loop (`bare`: a LightningModule with nothing but the math) takes {o['bare - hand (Lightning loop)']:.1f} ms "
            f"({e['ratio_vs_hand']['bare']:.2f}× the hand loop by itself, with Lightning's walk that rebuilds each CPU batch "
            "already skipped by gramkd's data module, ≈ 60 µs; the DistillModule also skips Lightning's gradient-clipping checks "
            "when no clipping is asked, ≈ 25 µs); "
            f"the DistillModule adds {e['ratio_vs_hand']['distill'] / e['ratio_vs_hand']['bare']:.2f}× on top: logging "
            f"{o['distill - distill_nolog (logging)']:+.2f} ms (the module no longer calls `self.log` in training: "
            "`self.log` costs ≈ 0.3 ms per value in Lightning's `_ResultCollection`, so the per-step values at the "
            "`log_every_n_steps` cadence and the epoch means, metrics and term weights go to the loggers and "
            "`trainer.callback_metrics` in one `log_values` call per event; "
            "the previous `make bench` made 1.33 `self.log` calls per step), the train "
            f"metrics {o['distill_nolog - distill_nolog_nometrics (train metrics)']:+.2f} ms, and its own step "
            f"{o['distill_nolog_nometrics - bare (DistillModule own step)']:+.2f} ms (the terms as Callbacks, whose hooks Lightning "
            "calls every step, the finiteness check, the epoch sums). These are fixed costs per step and per epoch, so they weigh "
            "less as the step's work grows: with ViLT nets (item 1c) the same module is within "
            "a few per cent of the hand loop.",
            "",
        ]
    else:
        out += [
            f"**Goal met** ({e['ratio_vs_hand']['distill']:.2f} against 1.10{ratio_interval(e)}).",
            "",
        ]
    return out


def section_vilt(v: dict) -> list[str]:
    o = {n: 1000 * (v["epoch_s"][n] - v["epoch_s"]["hand"]) / v["steps_per_epoch"] for n in v["epoch_s"]}
    inputs = ", ".join(f"{name} {'×'.join(map(str, shape))}" for name, shape in v["inputs"].items())
    rounds = v["per_round_ms"]
    spread = [d / h for d, h in zip(rounds["distill"], rounds["hand"])]
    bare_spread = [b / h for b, h in zip(rounds["bare"], rounds["hand"])]
    return [
        "## 1c. The same with ViLT nets",
        "",
        f"`benchmarks/bench_epoch_vilt.py`: `experiment=digits_nlvr/kd_gram_vilt` from the real configs (batches of 64, every row labeled) — a {v['student']['class']} student "
        f"(conf/net/vilt_student.yaml as kd_gram_vilt sets it, {v['student']['params']:,} parameters) distilled from a randomly initialised "
        f"{v['teacher']['class']} teacher (vilt_teacher.yaml as the teacher experiment sets it, {v['teacher']['params']:,} parameters) "
        "with KD + the centred Gram term, AdamW with the per-step warm-up/cosine schedule, on digits_nlvr generated in a temporary "
        f"folder ({v['train_rows']} training examples: {v['steps_per_epoch']} steps of {v['batch_size']}; inputs per example: {inputs}; "
        f"4×4 patches; vocabulary {v['vocab_size']}). Losses bit-identical across variants: "
        f"{'yes' if all(v['losses_identical'].values()) else 'NO'} ({v['steps_compared']} steps per fit). {v['rounds']} rounds of one "
        f"{v['epochs_per_fit']}-epoch fit per variant; medians as in item 1.",
        "",
        *epoch_table(v),
        "",
        f"Per step over the hand loop: Lightning's loop {o['bare']:+.2f} ms, the DistillModule {o['distill']:+.2f} ms, on a "
        f"{1000 * v['epoch_s']['hand'] / v['steps_per_epoch']:.0f} ms step; the per-round ratios DistillModule ÷ hand loop ran from "
        f"{min(spread):.2f} to {max(spread):.2f} (bare LightningModule ÷ hand loop: {min(bare_spread):.2f} to {max(bare_spread):.2f}), so "
        "differences of a few per cent between these variants are within the spread of one run. **Goal "
        f"{'met' if v['ratio_vs_hand']['distill'] <= GOALS['vilt_epoch_ratio'] else 'missed'}** ({v['ratio_vs_hand']['distill']:.2f} "
        "against 1.05). The DistillModule now runs the teacher before the student, as a hand loop does: run after it (while the "
        "student's autograd graph holds its activations), the ViLT teacher's forward took ≈ 20 % longer (50 against 42 ms per "
        "step, measured with this setup while making the change), which alone had put this ratio at 1.09.",
        "",
        *page_fault_lines(v),
    ]


def page_fault_lines(v: dict) -> list[str]:
    faults = v.get("page_faults_per_step")
    if not faults:
        return []
    per_variant = ", ".join(f"{name} {count:,.0f}" for name, count in faults.items())
    return [
        f"Page faults per training step (minor: fresh pages the allocator touched; the fit's setup included): {per_variant}, "
        "under the malloc policy the header names. Under glibc's own (`BENCH_GLIBC_TRIMS=1`) a step's freed activations go "
        "back to the OS and fault in again at the next step: thousands of pages a step here, more in the DistillModule than "
        "in the hand loop (README, Performance); `gramkd fit` keeps freed memory (`keep_freed_memory`).",
        "",
    ]


def section_gram(g: dict, sc: dict) -> list[str]:
    ms, share, term = g["ms"], g["share"], g["in_distill_module"]
    ops = g["aten_ops_per_call"]
    out = [
        "## 2. The Gram term's share of a training step",
        "",
        f"`benchmarks/bench_gram_share.py`, on one real mfeat batch of {g['batch_size']} (student rows {g['student_features']}, "
        f"teacher rows {g['teacher_features']}), the config's options (cosine, centred, MSE). The term is timed as the "
        "DistillModule runs it: `GramDistillation.loss` (the step's prepared mask, the teacher's Gram matrices, the student's, the "
        "loss) and its backward, in both cases of the module: **cached** (`teacher_cache=memory`, the default: the teacher's "
        "Gram matrices are read per row) and **online** (`teacher_cache=off`: computed from the teacher's rows every step).",
        "",
        f"Inside real DistillModule fits ({g['fits']} fits of {g['fit_epochs']} epochs per case, epochs 2…; the term's forward and "
        "its autograd node's backward timed in place, against the same fit's step time):",
        "",
        "| case | Gram term (ms / step) | DistillModule step (ms) | share |",
        "| --- | ---: | ---: | ---: |",
        f"| cached (default) | {term['cached']['term_ms']:.3f} | {term['cached']['step_ms']:.2f} | **{pct(term['cached']['share'])}** |",
        f"| online | {term['online']['term_ms']:.3f} | {term['online']['step_ms']:.2f} | **{pct(term['online']['share'])}** |",
        "",
        f"Against the hand-written step (the smallest denominator: no Lightning), {g['rounds']} interleaved rounds of "
        f"{g['calls_per_round']} calls; medians:",
        "",
        "| what | ms | ms, CPU clock |",
        "| --- | ---: | ---: |",
        f"| hand step, teacher forward online | {ms['step_online']:.2f} | {g['cpu_ms']['step_online']:.2f} |",
        f"| … the same without the Gram term | {ms['step_online_nogram']:.2f} | {g['cpu_ms']['step_online_nogram']:.2f} |",
        f"| hand step, teacher outputs and Gram matrices cached | {ms['step_cached']:.2f} | {g['cpu_ms']['step_cached']:.2f} |",
        f"| … the same without the Gram term | {ms['step_cached_nogram']:.2f} | {g['cpu_ms']['step_cached_nogram']:.2f} |",
        f"| Gram term, online, forward + backward ({ops['term_online']['all']:.0f} aten operations) | {ms['term_online']:.3f} | {g['cpu_ms']['term_online']:.3f} |",
        f"| Gram term, cached, forward + backward ({ops['term_cached']['all']:.0f} aten operations) | {ms['term_cached']:.3f} | {g['cpu_ms']['term_cached']:.3f} |",
        f"| the teacher's Gram matrix alone (forward, no grad: what `online` adds) | {ms['teacher_gram']:.3f} | {g['cpu_ms']['teacher_gram']:.3f} |",
        "",
        f"Share of the hand step: **{pct(share['share_cached'])}** cached, **{pct(share['share_online'])}** online (CPU clock: "
        f"{pct(g['cpu_share']['share_cached'])} / {pct(g['cpu_share']['share_online'])}). By difference of the steps with and "
        f"without the term: {pct(share['share_cached_by_difference'])} / {pct(share['share_online_by_difference'])} (this includes "
        "the student backward the term's gradient causes through the network's token layers, and is noisy: a difference of two "
        "close times).",
        "",
    ]
    online = term["online"]["share"]
    out += [
        f"**Goal {'met' if online <= GOALS['gram_share'] else 'missed'}** ({pct(online)} of the DistillModule step with the "
        f"teacher's forward against 3 %; {pct(share['share_online'])} of the hand-written one; with the teacher cache, whose "
        f"step has no teacher forward, {pct(term['cached']['share'])}). The term is one autograd node (`_GramLossToTarget`): its "
        "forward runs the very operations of `gram_matrix` and the loss (bit-identical to the plain float32 operations, tested), "
        "makes the teacher's Gram matrices itself when the teacher runs online (with the cache they are read per row), and "
        "then computes the gradient while those tensors are still in the cache; the loss is a scalar, so its backward is one "
        "multiplication of that gradient, kept on the node rather than saved for backward and without `once_differentiable`'s "
        "wrapper except under create_graph (≈ 10 µs of backward in a fit, from ≈ 30; the gradient equals autograd through the "
        "plain operations to 1e-12 in float64, tested). Rows are normalised in "
        "place where nothing records the operations. What remains at batch 64 is ≈ 30 small operations at a few µs each "
        f"({ops['term_online']['all']:.0f} aten calls online, counting those they make inside and the standalone backward's), "
        "three of them batched matrix products of 6×6 results that make up a third of the term (torch's CPU `bmm` takes its "
        "scalar loop below 400 multiply-adds per matrix). Inside a fit each operation costs about 1.5× what it costs in a tight loop "
        "(the teacher's forward and the student's backward have evicted the caches between two calls), which is why the "
        "in-module share exceeds the hand-step one. A further cut would have to change the bits of the Gram matrices, and "
        "with them every result already published from this code; and the unfused ways to do that are slower, not faster "
        "(a broadcast product and sum: ≈ 36 µs against `bmm`'s 18 for the student's Gram matrices), and fused kernels do "
        "not help at this size either: the term's default case as one `torch.compile`d function, patched into the node, took "
        "more time a step in fits than the eager node (`benchmarks/bench_gram_compiled.py`: 344–388 against 320–327 µs of "
        "forward), the compiled call's own overhead outweighing the fusion. When every modality is present (as in mfeat) the node "
        "takes a path of its own (`gram_all_present.py`): the loss by the same operations without the mask's branches (the same "
        "bits, tested), the diagonal zeroed by a product with an off-diagonal matrix of ones instead of a `where` (the same bits), "
        "and the gradient in two operations fewer (the pair weight left to the backward's product, the centring's 1/M folded into "
        "its subtraction). Against the previous code, alternating fits, medians per fit: 3.62 → 3.41 % (16 fits, a first "
        "version) and 3.59 → 3.49 % (12 fits, this one, whose constants follow the Gram matrices' dtype under autocast); "
        "identical code differs by about ±0.1 point between such runs on this machine.",
        "",
    ]
    return out


def section_cache(e: dict, g: dict) -> list[str]:
    ms = {k: 1000 * v for k, v in e["epoch_s"].items()}
    first = {k: 1000 * v for k, v in e["first_epoch_s"].items()}
    return [
        "## 3. Teacher-output cache against the online teacher",
        "",
        "From the same runs as item 1 (`benchmarks/bench_epoch.py`): DistillModule with `teacher_cache=memory` / `disk` against "
        "`teacher_cache=off`, mfeat teacher and student presets, same batches; the first epoch fills the cache (memory), later "
        "epochs read it. The losses of every step of every fit were bit-identical to the online teacher's: "
        f"memory {'yes' if e['losses_identical']['cache_memory'] else 'NO'}, disk {'yes' if e['losses_identical']['cache_disk'] else 'NO'} "
        "(asserted in the benchmark run; with a cache the teacher's outputs come from the batch in which a row was first "
        "seen, and they agree to the bit here).",
        "",
        "| | online (`off`) | `memory` | `disk` (reused) |",
        "| --- | ---: | ---: | ---: |",
        f"| first epoch (ms) | {first['distill']:.1f} | {first['cache_memory']:.1f} | {first['cache_disk']:.1f} |",
        f"| later epochs (ms / epoch) | {ms['distill']:.1f} | {ms['cache_memory']:.1f} | {ms['cache_disk']:.1f} |",
        f"| speed-up, later epochs (median of per-round ratios) | 1 | **{e['cache_speedup_steady']:.2f}×** | {e['disk_cache_speedup_steady']:.2f}× |",
        f"| cache hits / misses (last fit) | — | {e['cache_stats']['cache_memory']['hits']} / {e['cache_stats']['cache_memory']['misses']} "
        f"| {e['cache_stats']['cache_disk']['hits']} / {e['cache_stats']['cache_disk']['misses']} |",
        "",
        f"Over the 30 epochs of `make fit` this is ≈ {e['cache_speedup_full_fit_estimate']:.2f}× for the training epochs "
        f"(first epoch {e['cache_speedup_first_epoch']:.2f}× of online, then cached). The speed-up is bounded by what remains "
        "per step: the student's forward and backward, the losses, AdamW and DistillModule's per-step overhead over the hand "
        f"loop (item 1: {e['overhead_ms_per_step']['distill - hand']:.1f} ms per step), against "
        f"{g['ms']['step_online'] - g['ms']['step_cached']:.1f} ms for the teacher's forward that the cache saves (item 2: "
        "the online step less the cached one).",
        "",
    ]


def section_single(s: dict) -> list[str]:
    ms, sp = s["ms"], s["speedup"]
    out = [
        f"## 4. Batched against looped single-modality forwards (M = {s['modalities']})",
        "",
        f"`benchmarks/bench_single_modality.py`: `single_modality_outputs` (one forward over M·B = {s['modalities'] * s['batch_size']} rows) "
        f"against M forwards of batch {s['batch_size']} with one modality present each, mfeat presets; the student forward + "
        "backward, the teacher forward under no_grad. Same outputs: max |difference| "
        f"{max(s['max_abs_diff'].values()):.1e}. {s['rounds']} interleaved rounds of {s['calls_per_round']} calls; medians.",
        "",
        "| pass | looped (ms) | batched (ms) | speed-up |",
        "| --- | ---: | ---: | ---: |",
        f"| student fwd + bwd | {ms['looped_student']:.2f} | {ms['batched_student']:.2f} | {sp['student fwd+bwd']:.2f}× |",
        f"| teacher fwd (no grad) | {ms['looped_teacher']:.2f} | {ms['batched_teacher']:.2f} | {sp['teacher fwd (no_grad)']:.2f}× |",
        f"| **both** | {ms['looped']:.2f} | {ms['batched']:.2f} | **{sp['student fwd+bwd + teacher fwd']:.2f}×** |",
        "",
    ]
    if sp["student fwd+bwd + teacher fwd"] < GOALS["batched_speedup"]:
        out += [
            f"**Goal missed** for student + teacher together ({sp['student fwd+bwd + teacher fwd']:.2f}× against 1.5×); met for "
            f"the student ({sp['student fwd+bwd']:.2f}×). Batching saves per-operation overhead, not arithmetic: the looped "
            "and batched passes do the same FLOPs (every forward encodes all M modalities; masking only hides them). The "
            "small student is overhead-bound, so it gains; the 632k-parameter teacher at batch 64 is already compute-bound "
            "on one CPU thread, and over M·B rows its activations (transformer over 7 tokens × 384 rows, 256-wide "
            "feed-forward) outgrow the core's cache, so the batched teacher pass is no faster "
            f"({sp['teacher fwd (no_grad)']:.2f}×). In "
            "training the teacher's single-modality outputs are cached with `teacher_cache=memory` (the default), so after "
            f"the first epoch only the student pass remains per step: {sp['student fwd+bwd']:.2f}×.",
            "",
        ]
    return out


def section_scaling(f: dict, sc: dict) -> list[str]:
    out = [
        "## 5. Memory of `make fit`, and how a step grows",
        "",
        f"`benchmarks/bench_fit_memory.py` runs `{f['command']}` as a child process in an empty temporary folder "
        f"(OMP_NUM_THREADS={f['omp_num_threads']}); peak RSS is the child's `ru_maxrss` from `os.wait4`.",
        "",
        "| run | peak RSS (MB) | wall (s) | CPU (s) | test acc |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| cold cache: teacher, scratch student and distilled student trained (and tested) in one process | {f['cold']['peak_rss_mb']:.0f} | {f['cold']['wall_s']:.1f} | {f['cold']['cpu_s']:.1f} | {f['cold']['test_acc']:.3f} |",
        f"| warm cache: the same command again (distillation only) | {f['warm']['peak_rss_mb']:.0f} | {f['warm']['wall_s']:.1f} | {f['warm']['cpu_s']:.1f} | {f['warm']['test_acc']:.3f} |",
        "",
        "`benchmarks/bench_scaling.py`: the hand-written kd_gram step (DistillModule's math, AdamW update) with the student and "
        "teacher presets on synthetic data (standard-normal rows, all modalities present, 10 classes); the step with the "
        "teacher's forward (online) and with its outputs and Gram matrices precomputed (cached), and the Gram term alone as the "
        "DistillModule runs it with the caches (forward + backward). "
        f"{sc['rounds']} interleaved rounds per sweep; medians.",
        "",
        "By the number of modalities M (16 features each, batch 64):",
        "",
        "| M | step, online teacher (ms) | step, cached teacher (ms) | Gram fwd+bwd (ms) | Gram ÷ cached step |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for m, row in sc["by_modalities"].items():
        out.append(f"| {m} | {row['online_ms']:.2f} | {row['cached_ms']:.2f} | {row['gram_ms']:.3f} | {pct(row['gram_share_cached'])} |")
    out += [
        "",
        "By the batch size (mfeat's six views):",
        "",
        "| batch | step, online teacher (ms) | step, cached teacher (ms) | µs / sample (cached) | Gram fwd+bwd (ms) | Gram ÷ cached step |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for b, row in sc["by_batch_size"].items():
        out.append(
            f"| {b} | {row['online_ms']:.2f} | {row['cached_ms']:.2f} | {row['cached_us_per_sample']:.1f} | {row['gram_ms']:.3f} | {pct(row['gram_share_cached'])} |"
        )
    m1, m16 = sc["by_modalities"]["1"], sc["by_modalities"]["16"]
    b32, b1024 = sc["by_batch_size"]["32"], sc["by_batch_size"]["1024"]
    out += [
        "",
        f"From M = 1 to 16 the cached step grows {m16['cached_ms'] / m1['cached_ms']:.1f}× and the online step "
        f"{m16['online_ms'] / m1['online_ms']:.1f}× (the teacher's transformer over M + 1 tokens dominates); the Gram term's "
        f"M×M matrices grow {m16['gram_ms'] / m1['gram_ms']:.1f}×, still overhead-bound at batch 64. From batch 32 to 1024 "
        f"(32× the rows) the cached step grows {b1024['cached_ms'] / b32['cached_ms']:.1f}× "
        f"and the online step {b1024['online_ms'] / b32['online_ms']:.1f}×: small batches pay fixed per-step costs.",
        "",
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test); writes $TMPDIR/gramkd-results-quick.md")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--render", action="store_true", help="only rewrite results.md from results.json")
    args = parser.parse_args()
    if args.render:
        saved = json.loads((HERE / "results.json").read_text())
        info, total, before = saved.pop("machine"), saved.pop("total_s"), saved.pop("previous", None)
        (HERE / "results.md").write_text(render(info, saved, total, quick=False, before=before))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from common import machine

    started = time.perf_counter()
    saved = HERE / "results.json"
    previous = None if args.quick or not saved.is_file() else json.loads(saved.read_text())
    info = machine()
    print(f"gramkd benchmarks on {info['cpu']} ({info['cores']} cores), torch {info['torch']}; load {info['load']}", flush=True)
    results = {}
    for script, (full, quick) in BENCHMARKS.items():
        result = run(script, quick if args.quick else full)
        results[result["item"]] = result
    total = time.perf_counter() - started
    out = args.out or (Path(tempfile.gettempdir()) / "gramkd-results-quick.md" if args.quick else HERE / "results.md")
    before = previous_figures(previous)
    out.write_text(render(info, results, total, args.quick, before))
    out.with_suffix(".json").write_text(json.dumps({"machine": info, "total_s": total, **results, "previous": before}, indent=1))
    print(f"wrote {out} ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
