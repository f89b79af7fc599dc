"""`make bench`'s ViLT measurements on a GPU in bf16 (issue 13): a DistillModule epoch against a
hand-written loop, and the Gram term's share of a training step. Writes a markdown page (`--out`,
default benchmarks/results-gpu.md) and its figures as JSON beside it.

The setup is bench_epoch_vilt.py's (`experiment=digits_nlvr/kd_gram_vilt`: ViLT student and randomly
initialised ViLT teacher, KD + centred Gram, AdamW with the per-step warm-up/cosine schedule,
digits_nlvr batches of `--batch-size`, 64 by default, generated in a temporary folder), on `--device` under Lightning's
`--precision`; the hand-written loop runs the same math under the same autocast, moves each batch as
Lightning does, and starts from the same weights with the same batches. Timing points wait for the
device (torch.cuda.synchronize). GPU kernels need not be deterministic, so the per-step losses of
every variant are compared with the hand loop's within a relative tolerance (and reported) rather
than bit for bit; a difference over the tolerance (a wrong setup) makes the script exit with an
error after writing its page. The Gram term is timed in place as bench_gram_share.py does, the
device synchronised at both ends of its forward and of its backward; the step it is divided by is
that same fit's (so these syncs count in the step too), and the page also gives it against the epoch
measurement's unsynchronised step. Repeats and fits are cut down (to 2 at least) where a probe epoch
says the run would outlast `--time-limit`.

    PYTHONPATH=src python benchmarks/gpu_vilt.py [--device cuda] [--precision bf16-mixed] [--train-rows 2048] [--batch-size 64]
        [--epochs 4] [--repeats 5] [--fits 3] [--fit-epochs 3] [--time-limit 150] [--out benchmarks/results-gpu.md]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()  # --time-limit counts the imports too
sys.path.insert(0, str(Path(__file__).resolve().parent))
import lightning  # noqa: E402
import torch  # noqa: E402
from bench_epoch import BareModule, hand_fit, lightning_fit, measure  # noqa: E402
from bench_gram_share import module_shares  # noqa: E402
from run_all import GOALS, pct, verdict  # noqa: E402

from gramkd.nets.contract import count_parameters  # noqa: E402

from common import Placement, distill_module, machine, vilt_kd_gram  # noqa: E402

LOSS_TOLERANCE = 1e-2  # relative, per step, against the hand loop
LABELS = {
    "hand": "hand-written PyTorch loop (same autocast, teacher under no_grad every step)",
    "bare": "LightningModule with only that math (no logging, no metrics)",
    "distill": "**DistillModule**, `teacher_cache=off` (the same math as the hand loop)",
    "cache_memory": "DistillModule, `teacher_cache=memory` (the config's default)",
}


def progress(text: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {text}", flush=True)


class PlacedBareModule(BareModule):
    """BareModule whose (unregistered) teacher follows it across devices, as DistillModule's does."""

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self


def variants(setup, placement: Placement) -> dict:
    def distill(cache: str):
        return lambda: distill_module(setup, teacher_cache=cache)

    runs = {
        "hand": lambda e: hand_fit(setup, e, placement),
        "bare": lambda e: lightning_fit(setup, e, lambda: (PlacedBareModule(setup), []), placement),
        "distill": lambda e: lightning_fit(setup, e, distill("off"), placement),
        "cache_memory": lambda e: lightning_fit(setup, e, distill("memory"), placement),
    }
    return {name: reporting(name, run) for name, run in runs.items()}


def reporting(name: str, run):
    def fit(epochs: int) -> dict:
        result = run(epochs)
        progress(f"{name}: {epochs}-epoch fit in {result['fit']:.2f} s")
        return result

    return fit


def sized_to_budget(args, probe_epoch_s: float) -> tuple[int, int]:
    """(repeats, fits), cut down (to 2 at least) until the estimate fits the time left."""
    left = args.time_limit - (time.perf_counter() - STARTED)
    epoch_s, fit_overhead_s = 1.3 * probe_epoch_s, 1.0  # a Lightning epoch (+ syncs); a fit's setup/teardown

    def estimate(repeats: int, fits: int) -> float:
        epochs = 4 * ((1 + repeats * args.epochs) * epoch_s + (1 + repeats) * fit_overhead_s)
        return epochs + 2 * fits * (args.fit_epochs * epoch_s * 1.2 + fit_overhead_s)

    repeats, fits = args.repeats, args.fits
    while estimate(repeats, fits) > left and max(repeats, fits) > 2:
        repeats, fits = (repeats - 1, fits) if repeats >= fits else (repeats, fits - 1)
    progress(f"probe epoch {1000 * probe_epoch_s:.0f} ms: {repeats} rounds, {fits} Gram fits per mode, ≈ {estimate(repeats, fits):.0f} s")
    return repeats, fits


def device_info(placement: Placement) -> dict:
    if placement.device == "cpu":
        return {"name": "none (CPU run)", "cuda": None}
    props = torch.cuda.get_device_properties(placement.device)
    return {
        "name": torch.cuda.get_device_name(placement.device),
        "memory_gib": round(props.total_memory / 2**30, 1),
        "capability": f"{props.major}.{props.minor}",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


def gram_shares(gram: dict, epoch: dict, steps: int) -> dict:
    """The in-fit shares, and the term against the epoch measurement's (unsynchronised) step."""
    unsynced = {"online": epoch["epoch_s"]["distill"], "cached": epoch["epoch_s"]["cache_memory"]}
    return {
        mode: {
            **row,
            "step_ms_unsynced": 1000 * unsynced[mode] / steps,
            "share_of_unsynced": row["term_ms"] / (1000 * unsynced[mode] / steps),
        }
        for mode, row in gram.items()
    }


def render(r: dict) -> str:
    d, m, e, g = r["device"], r["machine"], r["epoch"], r["gram"]
    ratio = e["ratio_vs_hand"]["distill"]
    share = max(g["online"]["share"], g["cached"]["share"])
    ms = {n: 1000 * v for n, v in e["epoch_s"].items()}
    steps = r["steps_per_epoch"]
    diffs = e.get("loss_differences_vs_hand", {})
    lines = [
        "# gramkd on a GPU: ViLT kd_gram epoch and Gram share",
        "",
        f"Written by `{r['command']}` in {r['total_s'] / 60:.1f} min.",
        "",
        f"**Card:** {d['name']}"
        + (f" ({d['memory_gib']} GiB, compute capability {d['capability']}); CUDA {d['cuda']}, cuDNN {d['cudnn']}" if d["cuda"] else "")
        + f". **Software:** Python {m['python']}, torch {m['torch']}, Lightning {m['lightning']}. "
        f"**Host:** {m['cpu']}, {m['cores']} cores, {m['threads']} torch thread(s). **Date:** {m['date']}. "
        f"**Device / precision:** `{r['device_arg']}`, `{r['precision']}` (Lightning's; the hand loop under the same autocast).",
        "",
        "## Summary",
        "",
        "| measure | goal | measured | |",
        "| --- | --- | --- | --- |",
        f"| DistillModule epoch ÷ hand-written loop, ViLT student + ViLT teacher, teacher online | ≤ {GOALS['vilt_epoch_ratio']:.2f} "
        f"| {ratio:.2f} ({ms['distill']:.0f} vs {ms['hand']:.0f} ms/epoch; bare LightningModule {e['ratio_vs_hand']['bare']:.2f}; "
        f"`teacher_cache=memory` {e['ratio_vs_hand']['cache_memory']:.2f}) | {verdict(ratio <= GOALS['vilt_epoch_ratio'])} |",
        f"| Gram term (forward + backward) ÷ DistillModule training step | ≤ {pct(GOALS['gram_share'])} "
        f"| {pct(g['cached']['share'])} with `teacher_cache=memory` ({g['cached']['term_ms']:.2f} of {g['cached']['step_ms']:.1f} ms), "
        f"{pct(g['online']['share'])} with `teacher_cache=off` ({g['online']['term_ms']:.2f} of {g['online']['step_ms']:.1f} ms) "
        f"| {verdict(share <= GOALS['gram_share'])} |",
        "",
        "## Setup",
        "",
        f"`experiment=digits_nlvr/kd_gram_vilt` from the real configs (batches of {r['batch_size']}, every row labeled): student {r['student']['class']} ({r['student']['params']:,} parameters), "
        f"teacher {r['teacher']['class']} ({r['teacher']['params']:,} parameters, random weights), KD + centred Gram (weight 1), AdamW "
        f"with the per-step warm-up/cosine schedule; digits_nlvr generated in a temporary folder ({r['train_rows']} training rows: "
        f"{steps} steps of {r['batch_size']} per epoch). Every variant starts from the same student weights and reads the same batches "
        f"in the same order. Lightning runs without progress bar, summary, checkpointing, logger or validation. {e['rounds']} "
        f"interleaved rounds of one {e['epochs_per_fit']}-epoch fit per variant (order rotating, after a one-epoch warm-up fit of each); "
        "epoch time = median over epochs 2… of one epoch start to the next, the device synchronised at each; table: medians over rounds, "
        "ratios = median of the per-round ratios.",
        "",
        "## Epoch: DistillModule against a hand-written loop",
        "",
        "| variant | ms / epoch | ms / step | ÷ hand loop | per-round ÷ hand (min–max) | first epoch (ms) | `fit()` (ms) "
        "| losses: max abs / rel diff vs hand | bit-identical |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for n in e["epoch_s"]:
        per_round = [a / b for a, b in zip(e["per_round_ms"][n], e["per_round_ms"]["hand"])]
        diff = diffs.get(n, {"max_abs": 0.0, "max_rel": 0.0})
        lines.append(
            f"| {LABELS[n]} | {ms[n]:.1f} | {ms[n] / steps:.2f} | {e['ratio_vs_hand'][n]:.3f} | {min(per_round):.3f}–{max(per_round):.3f} "
            f"| {1000 * e['first_epoch_s'][n]:.1f} | {1000 * e['fit_wall_s'][n]:.0f} | {diff['max_abs']:.2g} / {diff['max_rel']:.2g} "
            f"| {'yes' if e['losses_identical'][n] else 'no'} |"
        )
    lines += [
        "",
        f"Losses compared over {e['steps_compared']} steps per fit, every fit; required: relative difference ≤ {LOSS_TOLERANCE:g} per step"
        f" — {'met by every variant' if not r['loss_mismatch'] else '**NOT met by ' + ', '.join(r['loss_mismatch']) + '**'}. "
        f"Teacher cache after the last fit: {e['cache_stats'].get('cache_memory')}.",
        "",
        "## The Gram term's share of a training step",
        "",
        f"Inside real DistillModule fits ({r['gram_fits']} per `teacher_cache` mode, {r['gram_fit_epochs']} epochs each, alternating): "
        "`GramDistillation.loss` (the step's mask, the teacher's Gram matrices computed or read from the per-row cache, the "
        "student's, the loss) and its autograd node's backward are timed in place from the second epoch on, the device "
        "synchronised before and after each; the step is that fit's epoch time ÷ steps (with those syncs in it). The last "
        "columns divide the term by the epoch measurement's step instead (no syncs inside the step).",
        "",
        "| teacher_cache | Gram fwd+bwd (ms / step) | step in the timed fit (ms) | share | step, unsynchronised (ms) | share of that |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {'off' if mode == 'online' else 'memory'} | {x['term_ms']:.3f} | {x['step_ms']:.2f} | {pct(x['share'])} "
            f"| {x['step_ms_unsynced']:.2f} | {pct(x['share_of_unsynced'])} |"
            for mode, x in g.items()
        ],
        "",
        f"Raw figures: `{r['json_name']}`.",
        "",
    ]
    return "\n".join(lines)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="bf16-mixed", choices=("bf16-mixed", "32-true"))
    parser.add_argument("--train-rows", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per fit of the epoch measurement (at least 2)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds of the epoch measurement")
    parser.add_argument("--fits", type=int, default=3, help="DistillModule fits per teacher_cache mode (Gram share)")
    parser.add_argument("--fit-epochs", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=150.0, help="seconds the whole run should take at most")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results-gpu.md")
    args = parser.parse_args()
    if min(args.epochs, args.fit_epochs) < 2:
        parser.error("--epochs and --fit-epochs must be at least 2 (epoch 1 is left out of the timings)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    return args


def main() -> None:
    args = parse()
    placement = Placement(args.device, args.precision)
    info, device = machine(), device_info(placement)
    progress(
        f"gpu_vilt on {device['name']} ({args.device}, {args.precision}); torch {torch.__version__}, Lightning {lightning.__version__}"
    )
    with tempfile.TemporaryDirectory() as root:
        setup = vilt_kd_gram(root, {"train": args.train_rows, "val": 64, "test": 64}, [f"data.batch_size={args.batch_size}"])
        steps = len(setup.datamodule.train_dataloader())
        progress(f"digits_nlvr: {args.train_rows} training rows, {steps} steps of {setup.datamodule.batch_size} per epoch")
        hand_fit(setup, 1, placement)  # first use of the device: kernels, handles, allocator
        repeats, fits = sized_to_budget(args, hand_fit(setup, 1, placement)["fit"])
        epoch = measure(variants(setup, placement), args.epochs, repeats, tolerance=LOSS_TOLERANCE)
        progress(f"epoch: DistillModule ÷ hand {epoch['ratio_vs_hand']['distill']:.3f}; Gram share: {fits} fits per mode")
        gram = gram_shares(module_shares(setup, fits, args.fit_epochs, placement), epoch, steps)
    result = {
        "item": "gpu_vilt",
        "command": "python benchmarks/gpu_vilt.py " + " ".join(sys.argv[1:]),
        "device_arg": args.device,
        "precision": args.precision,
        "device": device,
        "machine": info,
        "train_rows": args.train_rows,
        "steps_per_epoch": steps,
        "batch_size": setup.datamodule.batch_size,
        "student": {"class": type(setup.student).__name__, "params": count_parameters(setup.student)},
        "teacher": {"class": type(setup.teacher).__name__, "params": count_parameters(setup.teacher)},
        "epoch": epoch,
        "gram": gram,
        "gram_fits": fits,
        "gram_fit_epochs": args.fit_epochs,
        "json_name": args.out.with_suffix(".json").name,
        "loss_mismatch": [n for n, d in epoch["loss_differences_vs_hand"].items() if not d["within_tolerance"]],
        "total_s": time.perf_counter() - STARTED,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(result))
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    progress(
        f"wrote {args.out} and {result['json_name']}: DistillModule ÷ hand {epoch['ratio_vs_hand']['distill']:.3f}, "
        f"Gram share {pct(gram['cached']['share'])} cached / {pct(gram['online']['share'])} online"
    )
    if result["loss_mismatch"]:
        raise SystemExit(
            f"losses differ from the hand-written loop's by more than {LOSS_TOLERANCE:g} (relative): {result['loss_mismatch']}"
        )


if __name__ == "__main__":
    main()
