"""`make bench`: run every benchmark (one process each, one thread) and write benchmarks/results.md.

    python benchmarks/run_all.py            # the full set, about 4 minutes on 2 CPU cores
    python benchmarks/run_all.py --quick    # fewer repeats: a smoke test (writes to the temp folder, not here)

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
    "bench_epoch.py": (["--epochs", "6", "--repeats", "9"], ["--epochs", "3", "--repeats", "2", "--profile-epochs", "2"]),
    "bench_gram_share.py": (["--repeats", "15", "--number", "20"], ["--repeats", "3", "--number", "5"]),
    "bench_single_modality.py": (["--repeats", "15", "--number", "10"], ["--repeats", "3", "--number", "3"]),
    "bench_scaling.py": (["--repeats", "7"], ["--repeats", "2"]),
    "bench_fit_memory.py": ([], []),
}
GOALS = {"epoch_ratio": 1.10, "gram_share": 0.03, "cache_speedup": 1.5, "batched_speedup": 1.5}


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


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render(machine: dict, r: dict, total_s: float, quick: bool) -> str:
    e, g, s, sc, f = r["epoch"], r["gram_share"], r["single_modality"], r["scaling"], r["fit_memory"]
    epoch_ratio = e["ratio_vs_hand"]["distill"]
    share_online, share_cached = g["share"]["share_online"], g["share"]["share_cached"]
    cache_speedup = e["cache_speedup_steady"]
    batched = s["speedup"]["student fwd+bwd + teacher fwd"]
    lines = [
        "# gramkd benchmarks",
        "",
        f"Written by `make bench` (`python benchmarks/run_all.py`{' --quick' if quick else ''}) in {total_s / 60:.1f} min.",
        "",
        f"**Machine:** {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, torch {machine['torch']}, "
        f"Lightning {machine['lightning']}; OMP_NUM_THREADS=1 (one thread per benchmark process); {machine['date']}.",
        f"**Load (`uptime`):** {machine['load']} at the start, {r['fit_memory']['load_after']} at the end"
        + (" — other work was running on this 2-core machine (load ≥ 1), so absolute times are inflated;"
           " every ratio below was measured side by side in one process (interleaved rounds, median of per-round ratios)."
           if float(machine["load"].split(",")[0]) >= 1 else "."),
        *([f"Other processes running when the benchmarks started: {'; '.join(f'`{b}`' for b in machine['busy'])}."] if machine["busy"] else []),
        "No GPU was available for these figures (CPU only).",
        "",
        "## Summary",
        "",
        "| # | measure | goal | measured | |",
        "| --- | --- | --- | --- | --- |",
        f"| 1 | DistillModule epoch ÷ hand-written PyTorch loop (kd_gram, mfeat, same math, batches, init; teacher online) "
        f"| ≤ 1.10 | {epoch_ratio:.2f} ({1000 * e['epoch_s']['distill']:.0f} vs {1000 * e['epoch_s']['hand']:.0f} ms/epoch) "
        f"| {verdict(epoch_ratio <= GOALS['epoch_ratio'])} |",
        f"| 1b | the same with the default `teacher_cache=memory` ÷ hand loop (online teacher) | | "
        f"{e['ratio_vs_hand']['cache_memory']:.2f} | |",
        f"| 2 | Gram term (forward + backward) ÷ training step, batch 64 | ≤ 3 % | {pct(share_online)} of the step with the teacher's forward, "
        f"{pct(share_cached)} with cached teacher outputs ({g['ms']['gram']:.2f} ms of {g['ms']['step_online']:.1f} / {g['ms']['step_cached']:.1f} ms) "
        f"| {verdict(max(share_online, share_cached) <= GOALS['gram_share'])} |",
        f"| 3 | epoch, teacher cache (memory) vs online teacher, losses bit-identical "
        f"| ≥ 1.5× | {cache_speedup:.2f}× after the first epoch; first epoch {e['cache_speedup_first_epoch']:.2f}×; "
        f"30 training epochs ≈ {e['cache_speedup_full_fit_estimate']:.2f}×; losses bit-identical: {'yes' if all(e['losses_identical'].values()) else 'NO'} "
        f"| {verdict(cache_speedup >= GOALS['cache_speedup'])} |",
        f"| 4 | single-modality forwards at M = 6, batched ÷ looped (student fwd+bwd + teacher fwd) "
        f"| ≥ 1.5× | {batched:.2f}× (student alone {s['speedup']['student fwd+bwd']:.2f}×, teacher alone {s['speedup']['teacher fwd (no_grad)']:.2f}×) "
        f"| {verdict(batched >= GOALS['batched_speedup'])} |",
        f"| 5 | peak RSS of `make fit` (`{f['command']}`) | — | {f['cold']['peak_rss_mb']:.0f} MB cold cache "
        f"(teacher + scratch + distilled student, {f['cold']['wall_s']:.0f} s), {f['warm']['peak_rss_mb']:.0f} MB warm ({f['warm']['wall_s']:.0f} s) | |",
        f"| 5 | training step, M = 1 → 16 modalities (batch 64, cached teacher) | — | "
        f"{sc['by_modalities']['1']['cached_ms']:.1f} → {sc['by_modalities']['16']['cached_ms']:.1f} ms "
        f"(online teacher {sc['by_modalities']['1']['online_ms']:.1f} → {sc['by_modalities']['16']['online_ms']:.1f} ms) | |",
        f"| 5 | training step, batch 32 → 1024 (mfeat views, cached teacher) | — | "
        f"{sc['by_batch_size']['32']['cached_ms']:.1f} → {sc['by_batch_size']['1024']['cached_ms']:.1f} ms "
        f"({sc['by_batch_size']['32']['cached_us_per_sample']:.0f} → {sc['by_batch_size']['1024']['cached_us_per_sample']:.0f} µs per sample) | |",
        "",
    ]
    lines += section_epoch(e)
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


def section_epoch(e: dict) -> list[str]:
    ms = {k: 1000 * v for k, v in e["epoch_s"].items()}
    label = {
        "hand": "hand-written PyTorch loop (teacher under no_grad every step)",
        "bare": "LightningModule with only that math (no logging, no metrics)",
        "distill": "**DistillModule**, `teacher_cache=off` (identical math to the hand loop)",
        "distill_nolog": "DistillModule with `self.log`/`self.log_dict` made no-ops",
        "distill_nolog_nometrics": "… and without the per-step torchmetrics update",
        "cache_memory": "DistillModule, `teacher_cache=memory` (the config's default)",
        "cache_disk": "DistillModule, `teacher_cache=disk` (filled by an earlier fit: no misses)",
    }
    out = [
        "## 1. A DistillModule epoch against a hand-written loop",
        "",
        f"`benchmarks/bench_epoch.py`. The real `experiment=mfeat/kd_gram` config: mfeat split ({e['train_rows']} training rows, "
        f"batch {e['batch_size']}, {e['steps_per_epoch']} steps per epoch), student preset ({e['student_params']:,} parameters), "
        f"teacher preset ({e['teacher_params']:,} parameters, random weights), KD T=4 + centred cosine Gram (weight 0.1), "
        "AdamW lr 1e-2 with the per-epoch cosine schedule. Every variant starts from the same student weights and reads the same "
        f"batches in the same order; their losses were compared step by step ({e['steps_compared']} steps per fit, every fit): "
        f"bit-identical in every variant: {'yes' if all(e['losses_identical'].values()) else 'NO'}. Lightning runs without progress bar, model "
        "summary, checkpointing, logger or validation, but with everything DistillModule always does (its `self.log` of "
        f"every term, the train accuracy/F1 metrics). {e['rounds']} rounds of one {e['epochs_per_fit']}-epoch fit per variant, "
        "order rotating; epoch time = median over epochs 2… of one epoch start to the next; table: median over rounds.",
        "",
        "| variant | ms / epoch | ÷ hand loop | first epoch (ms) | whole `fit()` call (ms) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, text in label.items():
        out.append(f"| {text} | {ms[name]:.1f} | {e['ratio_vs_hand'][name]:.2f} | {1000 * e['first_epoch_s'][name]:.1f} | {1000 * e['fit_wall_s'][name]:.0f} |")
    o = e["overhead_ms_per_step"]
    hand_step = ms["hand"] / e["steps_per_epoch"]
    out += [
        "",
        f"**Where the time goes** (differences of the side-by-side medians, per training step; the hand loop's step is {hand_step:.1f} ms):",
        "",
        "| cost per step | ms |",
        "| --- | ---: |",
        *[f"| {k} | {v:+.2f} |" for k, v in o.items()],
        "",
        "cProfile of one DistillModule fit (`teacher_cache=off`), cumulative time per training step. Profiling inflates "
        "Python-heavy code (here: the logging), so read these as proportions:",
        "",
        "| function | ms / step (profiled) |",
        "| --- | ---: |",
        *[f"| {'… ' * ((len(k) - len(k.lstrip())) // 2)}{k.strip()} | {v:.2f} |" for k, v in e["profile"]["ms_per_step"].items()],
        "",
    ]
    if e["ratio_vs_hand"]["distill"] > GOALS["epoch_ratio"]:
        out += [
            f"**Goal missed by {100 * (e['ratio_vs_hand']['distill'] / GOALS['epoch_ratio'] - 1):.0f} %** "
            f"({e['ratio_vs_hand']['distill']:.2f} against 1.10). The work per step is tiny (a {hand_step:.0f} ms step), so fixed "
            "per-step costs count: Lightning's loop itself (`bare`) costs "
            f"{o['bare - hand (Lightning loop)']:.1f} ms; the larger part is the logging DistillModule always does — 8 "
            "`self.log` entries per step (`train/ce`, `train/kd`, `train/gram`, `weight/kd`, `weight/gram`, `train/loss`, and "
            "the acc/F1 MetricCollection) cost "
            f"{o['distill - distill_nolog (self.log calls)']:.1f} ms, i.e. ≈ {1000 * o['distill - distill_nolog (self.log calls)'] / e['profile']['log_calls_per_step']:.0f} µs "
            "per entry: Lightning's `_ResultCollection.log` calls `_ResultMetric.to(device)` on every call, which walks the "
            "metric's `__dict__` with `apply_to_collection` and deep-copies its `_Metadata` dataclass; and the "
            "torchmetrics forward (`ClassifierModule._log_metrics` calls `metrics(logits, target)`, which computes the "
            "batch's accuracy and F1 besides updating, although only epoch values are logged) costs "
            f"{o['distill_nolog - distill_nolog_nometrics (torchmetrics update)']:.1f} ms; DistillModule's own step without "
            "them (DistillStep, the terms as Callbacks, a `torch.tensor` per term weight, the finiteness check) differs "
            f"from the bare LightningModule by {o['distill_nolog_nometrics - bare (DistillModule own step)']:+.1f} ms. These costs are per "
            "step, not per sample or per parameter, so they weigh less as the step's work grows (larger batches or nets). "
            "The default `teacher_cache=memory` more than pays for it: "
            f"{e['ratio_vs_hand']['cache_memory']:.2f}× the hand loop's epoch time.",
            "",
        ]
    return out


def section_gram(g: dict, sc: dict) -> list[str]:
    ms, share = g["ms"], g["share"]
    out = [
        "## 2. The Gram term's share of a training step",
        "",
        f"`benchmarks/bench_gram_share.py`: `gram_loss` forward + backward with the config's options (cosine, centred, MSE) on "
        f"the student's {g['student_features']} and the teacher's {g['teacher_features']} modality tokens of one real mfeat batch, "
        "against the hand-written training step (the smallest denominator: a DistillModule step adds the overhead of item 1). "
        f"{g['rounds']} interleaved rounds of {g['calls_per_round']} calls each; medians.",
        "",
        "| what | ms |",
        "| --- | ---: |",
        f"| training step, teacher forward online | {ms['step_online']:.2f} |",
        f"| … the same without the Gram term | {ms['step_online_nogram']:.2f} |",
        f"| training step, teacher outputs cached (default) | {ms['step_cached']:.2f} |",
        f"| … the same without the Gram term | {ms['step_cached_nogram']:.2f} |",
        f"| Gram term alone, forward + backward | {ms['gram']:.3f} |",
        f"| of which the teacher's Gram matrix (forward, no grad) | {ms['teacher_gram']:.3f} |",
        "",
        f"Share of the step: **{pct(share['share_online'])}** with the teacher online (by difference of the two steps: "
        f"{pct(share['share_online_by_difference'])}), **{pct(share['share_cached'])}** with cached teacher outputs (by difference: "
        f"{pct(share['share_cached_by_difference'])}). The teacher's own Gram matrix is {pct(share['teacher_gram_of_gram'])} of the term.",
        "",
    ]
    if max(share["share_online"], share["share_cached"]) > GOALS["gram_share"]:
        b64, b1024 = sc["by_batch_size"]["64"], sc["by_batch_size"]["1024"]
        out += [
            f"**Goal missed**: {pct(share['share_online'])} / {pct(share['share_cached'])} against 3 % "
            f"({share['share_online'] / GOALS['gram_share']:.1f}× / {share['share_cached'] / GOALS['gram_share']:.1f}× over). "
            "The arithmetic is tiny (a [64, 6, 6] Gram matrix per side), but `gram_loss` with masking and centring runs "
            f"{g['gram_aten_ops_per_call']['all']:.0f} aten operations per forward + backward (torch.profiler; among them "
            f"{g['gram_aten_ops_per_call']['where']:.0f} `torch.where`, most with a Python-scalar operand that is made into a "
            "tensor each time; the mask, centre and normalise steps run for both sides, plus their backward nodes), "
            f"≈ {1000 * g['ms']['gram'] / g['gram_aten_ops_per_call']['all']:.1f} µs per operation: at batch 64 the term is "
            "bound by per-operation overhead, not arithmetic. With larger batches the share grows (item 5: "
            f"{pct(sc['by_batch_size']['32']['gram_share_cached'])} at batch 32, {pct(b1024['gram_share_cached'])} at 1024): the "
            "teacher's rows are 128 wide against the student's 8, and they are masked, centred and normalised every step "
            f"(the teacher's Gram matrix: batch 64 {b64['teacher_gram_ms']:.2f} of {b64['gram_ms']:.2f} ms; batch 1024 "
            f"{b1024['teacher_gram_ms']:.2f} of {b1024['gram_ms']:.2f} ms), while the cached step's student is tiny. Two changes would bring it down, neither made "
            "here: cache the teacher's Gram matrix per row with the teacher's outputs (it depends on the teacher only; "
            "removes the teacher part), and skip the masking `where`s when every modality is present (mfeat has no "
            "missing modality) or fuse the function (`torch.compile`). The share shrinks relative to a costlier step "
            "(the online teacher, a DistillModule step with its logging).",
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
        "teacher's forward (online) and with its outputs precomputed (cached), and the Gram term alone (forward + backward). "
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
        out.append(f"| {b} | {row['online_ms']:.2f} | {row['cached_ms']:.2f} | {row['cached_us_per_sample']:.1f} | {row['gram_ms']:.3f} | {pct(row['gram_share_cached'])} |")
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
        info, total = saved.pop("machine"), saved.pop("total_s")
        (HERE / "results.md").write_text(render(info, saved, total, quick=False))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from common import machine

    started = time.perf_counter()
    info = machine()
    print(f"gramkd benchmarks on {info['cpu']} ({info['cores']} cores), torch {info['torch']}; load {info['load']}", flush=True)
    results = {}
    for script, (full, quick) in BENCHMARKS.items():
        result = run(script, quick if args.quick else full)
        results[result["item"]] = result
    total = time.perf_counter() - started
    out = args.out or (Path(tempfile.gettempdir()) / "gramkd-results-quick.md" if args.quick else HERE / "results.md")
    out.write_text(render(info, results, total, args.quick))
    out.with_suffix(".json").write_text(json.dumps({"machine": info, "total_s": total, **results}, indent=1))
    print(f"wrote {out} ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
