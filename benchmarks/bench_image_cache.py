"""The preprocessed image cache of `data=image_text`: speed of an epoch, and peak memory of a fit.

Data: generated Hateful Memes folders (`train.jsonl`, `dev_seen.jsonl`, `test_seen.jsonl`, texts of
random words, labels 0/1) whose images are 64x64 RGB PNGs (a noisy colour gradient, a disc and a
digit), written once into /tmp/bench_image_cache and reused by later runs.

1. Speed: one epoch of the real train loader of an ImageTextDataModule whose cache is built, against
   the same epoch (same sampler, so the same batches in the same order, same batch size) from a
   Dataset that decodes every image from its PNG with Pillow per batch. Interleaved rounds after
   a warm-up epoch of each (files in the page cache for both), median; one thread.
2. Memory: `gramkd fit data=image_text … trainer.max_epochs=1` on 2 000 and on 50 000 training
   images, each in a fresh child process whose peak RSS is its `ru_maxrss` (os.wait4); once with an
   empty cache folder (the fit decodes every image first) and once with the cache built; then the
   peak after each step of the data module alone. `--memmap-build` adds a first build with the
   build as it was before it wrote in blocks (an open_memmap output), for comparison.

Everything heavy runs in children and this process never imports torch: a child's ru_maxrss starts
from its parent's peak (Linux carries it over at exec), so a big parent would hide small peaks.

    python benchmarks/bench_image_cache.py --memmap-build  # writes benchmarks/image_cache.md (~10 min)
    python benchmarks/bench_image_cache.py --quick         # small sizes, a smoke run (writes nothing unless --out)
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: a shared 2-core machine

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from child_memory import run_and_measure

HERE = Path(__file__).resolve().parent
GRAMKD = Path(sys.executable).parent / "gramkd"
ROOT = Path("/tmp/bench_image_cache")
MB = 1 << 20
SIZE = 64
HELD_OUT = 64  # rows of the val and of the test split: the fit's epoch is the train split
WORDS = "the a cat dog man woman car house tree sky red blue green big small old new runs sits eats sees holds likes hates".split()

# Found outside this script (2026-11-26), by the probes it names; kept beside the numbers that it explains.
DIAGNOSIS = [
    "Why, as diagnosed outside this script (2026-11-26; one-epoch fits with the cache built, `RssAnon` sampled every "
    "0.5 s; the data module alone step by step, with `tracemalloc`):",
    "",
    "- **The fit grew per training step, not per cached image.** Before the change below, a 50 000-image fit rose "
    "steadily through its epoch, about 1.2 MB a step (anonymous 830 to 2 215 MB over 1 563 steps; peak RSS 2 356 MB), "
    "a 10 000-image fit to 776 MB. With `MALLOC_MMAP_THRESHOLD_=131072` (glibc maps and unmaps large blocks instead of "
    "reusing its heap) the 10 000-image fit peaked at 406 MB, and with the train metrics not fed at all it stayed flat "
    "at ~388 MB: heap fragmentation, pinned by the train metrics.",
    "- **What pinned the heap:** `BatchedUpdates` (gramkd.modules.metrics) kept every step's logits (detached) and "
    "targets as the step's own small tensors until the epoch's end, each allocated among the step's MB-sized blocks "
    "(a batch of images is 1.5 MB in float32), so glibc could not reuse those blocks whole and grew its heap every "
    "step. It now copies each step's rows into two buffers allocated once (room for `max_elements` logits): the same "
    "50 000-image fit stays flat through the epoch, peak RSS 646 MB (2 000 images: 524 MB).",
    "- **The data module:** it kept an `Example` with `Path`s for each row (~1 KB per example; `tracemalloc`: 62 MB held "
    "at 50 000) after parsing every JSON line of a split at once (75 MB traced peak), and int64 token ids `[N, 2, T]` "
    "(32 MB at 50 000). Now the split files are read a line at a time (twice: first JSON and labels are checked, then "
    "the rows are collected) into columns: line numbers, labels and image rows as int64 arrays, the distinct image "
    "paths as strings, the texts dropped once tokenised; token ids stay int32 and masks bool (int64 only per batch); "
    "chunked encoding fills arrays sized once. Fits then: 555 MB at 50 000 against 522 MB at 2 000 (cache built), "
    "565 against 526 MB (first build).",
    "- **The build:** rows assigned into an `open_memmap` of the whole file stay resident as dirty file pages until "
    "the file is closed (the file-backed peak above); writing 4 MB blocks with plain writes holds one block.",
    "- **Run to run:** while the heap fragmented, the 50 000-image fits moved by hundreds of MB between runs (2 011 / "
    "2 110 / 1 889 MB in one run, 1 742 / 1 507 / 1 688 MB in the next); the data-module rows move by a few MB.",
]

FULL = {"speed_rows": 10_000, "rounds": 5, "memory_rows": (2_000, 50_000), "batch_size": 32}
QUICK = {"speed_rows": 600, "rounds": 3, "memory_rows": (300, 1_200), "batch_size": 32}


# -- the data ----------------------------------------------------------------------------------------
def image(i: int, split: str) -> "Image.Image":  # noqa: F821
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([i, ("train", "val", "test").index(split)])
    ramp = (np.add.outer(np.arange(SIZE), np.arange(SIZE)) / (2 * SIZE - 2))[..., None]
    start, stop = rng.integers(0, 256, (2, 3))
    pixels = start * (1 - ramp) + stop * ramp + rng.normal(0, 12, (SIZE, SIZE, 3))
    picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    x, y = rng.integers(0, SIZE - 16, 2)
    draw.ellipse([x, y, x + 16, y + 16], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw.text(tuple(int(c) for c in rng.integers(0, SIZE - 12, 2)), str(i % 10), fill=(255, 255, 255))
    return picture


def image_name(i: int, split: str) -> str:
    return f"img/{split}-{i:05d}.png"


def ensure_images(train_rows: int) -> dict:
    """PNGs for `train_rows` training images and the held-out splits under ROOT (only the missing ones
    are written); what it cost so far, kept in ROOT/generated.json."""
    (ROOT / "img").mkdir(parents=True, exist_ok=True)
    log_file = ROOT / "generated.json"
    log = json.loads(log_file.read_text()) if log_file.is_file() else {"train": 0, "held_out": 0, "seconds": 0.0}
    started = time.perf_counter()
    for split, have, want in (("val", log["held_out"], HELD_OUT), ("test", log["held_out"], HELD_OUT), ("train", log["train"], train_rows)):
        for i in range(have, want):
            image(i, split).save(ROOT / image_name(i, split))
    log["held_out"], log["train"] = HELD_OUT, max(log["train"], train_rows)
    log["seconds"] += time.perf_counter() - started
    log_file.write_text(json.dumps(log))
    return log


def memes_folder(train_rows: int) -> Path:
    """ROOT/memes-<rows>: the three split files; their `img` paths are relative to ROOT (data.images)."""
    folder = ROOT / f"memes-{train_rows}"
    folder.mkdir(exist_ok=True)
    for file, split, rows in (
        ("train.jsonl", "train", train_rows),
        ("dev_seen.jsonl", "val", HELD_OUT),
        ("test_seen.jsonl", "test", HELD_OUT),
    ):
        rng = np.random.default_rng(rows + len(split))
        lines = []
        for i in range(rows):
            text = " ".join(rng.choice(WORDS, int(rng.integers(3, 12))))
            lines.append(json.dumps({"id": i, "img": image_name(i, split), "label": int(rng.integers(0, 2)), "text": text}))
        (folder / file).write_text("\n".join(lines) + "\n")
    return folder


# -- 1. speed ----------------------------------------------------------------------------------------
def decoding_dataset(cached):
    """The baseline: `cached` (an ImageTextDataset) with its images decoded from their files per batch."""
    import torch
    from PIL import Image
    from torch.utils.data import Dataset

    class DecodingDataset(Dataset):
        def __init__(self, paths: list[Path]):
            self.paths = paths  # one per example

        def __len__(self) -> int:
            return len(self.paths)

        def __getitems__(self, positions: list[int]) -> dict:
            rows = torch.as_tensor(positions, dtype=torch.long)
            pixels = torch.stack([self._decoded(self.paths[p]) for p in positions])
            return {
                "inputs": {"text": cached.tokens(rows), "image": (pixels.float().div_(255) - cached.mean) / cached.std},
                "present": {m: torch.ones(len(rows), dtype=torch.bool) for m in ("text", "image")},
                "target": cached.labels[rows],
                "index": rows + cached.first_index,
            }

        @staticmethod
        def _decoded(path: Path) -> torch.Tensor:
            with Image.open(path) as picture:
                picture = picture.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
            return torch.from_numpy(np.asarray(picture, dtype=np.uint8)).permute(2, 0, 1)

    return DecodingDataset


def epoch_seconds(loader, epoch: int) -> float:
    loader.sampler.set_epoch(epoch)
    started = time.perf_counter()
    touched = 0.0
    for batch in loader:
        touched += float(batch["inputs"]["image"].sum()) + float(batch["inputs"]["text"].sum())
    return time.perf_counter() - started


def measure_speed(rows: int, rounds: int, batch_size: int) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from gramkd.data.dataset import as_batch
    from gramkd.data.image_text import ImageTextDataModule
    from gramkd.data.image_text.image_cache import image_cache_key

    torch.set_num_threads(1)
    data = ImageTextDataModule(
        path=str(memes_folder(rows)),
        format="hateful_memes",
        images=str(ROOT),
        image_size=(SIZE, SIZE),
        batch_size=batch_size,
        cache_dir=str(ROOT / "cache-speed"),
    )
    key = image_cache_key(data.prepared.records["train"], (SIZE, SIZE), 3)
    built_now = not (ROOT / "cache-speed" / f"hateful_memes-train-{key}.npy").is_file()
    started = time.perf_counter()
    data.setup("fit")
    setup_seconds = time.perf_counter() - started
    cached_loader = data.train_dataloader()
    train = data.datasets["train"]
    records = data.prepared.records["train"]
    paths = [Path(records.images[row]) for row in records.image_rows[:, 0]]
    baseline = decoding_dataset(train)(paths)
    decoding_loader = DataLoader(baseline, batch_size=batch_size, sampler=cached_loader.sampler, collate_fn=as_batch)
    check_same_batches(cached_loader, decoding_loader)

    loaders = {"cache": cached_loader, "decode": decoding_loader}
    times = {name: [] for name in loaders}
    for loader in loaders.values():  # warm-up: PNGs and the cache file in the page cache
        epoch_seconds(loader, 0)
    for r in range(rounds):
        for name in ("cache", "decode") if r % 2 == 0 else ("decode", "cache"):
            times[name].append(epoch_seconds(loaders[name], r + 1))
    median = {name: statistics.median(t) for name, t in times.items()}
    return {
        "rows": rows,
        "rounds": rounds,
        "batch_size": batch_size,
        "setup_seconds": setup_seconds,
        "times": times,
        "built_now": built_now,
        "median": median,
        "images_per_s": {name: rows / m for name, m in median.items()},
        "ratio": median["decode"] / median["cache"],
        "cache_mb": train.images.nbytes / MB,
    }


def check_same_batches(cached_loader, decoding_loader) -> None:
    """Both loaders give equal batches (pixels included): the baseline does the same work from the files."""
    import torch

    cached_loader.sampler.set_epoch(0)
    for a, b, _ in zip(cached_loader, decoding_loader, range(3)):
        for key in ("target", "index"):
            assert torch.equal(a[key], b[key]), key
        for name in a["inputs"]:
            assert torch.equal(a["inputs"][name], b["inputs"][name]), name


# -- 2. memory ---------------------------------------------------------------------------------------
def fit_args(folder: Path, cache_dir: Path, batch_size: int) -> list[str]:
    return [
        "fit",
        "data=image_text",
        f"data.path={folder}",
        "data.format=hateful_memes",
        f"data.images={ROOT}",
        f"data.image_size=[{SIZE},{SIZE}]",
        f"data.cache_dir={cache_dir}",
        f"data.batch_size={batch_size}",
        "net=mm_image_text_student",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


def measure_memory(rows: int, batch_size: int, workdir: Path, memmap_build: bool) -> dict:
    folder = memes_folder(rows)
    cache_dir = workdir / f"cache-{rows}"
    shutil.rmtree(cache_dir, ignore_errors=True)
    args = fit_args(folder, cache_dir, batch_size)
    runs = {"first build": run_and_measure([str(GRAMKD), *args], workdir)}
    runs["cache built"] = run_and_measure([str(GRAMKD), *args], workdir)
    stages = {"cache built": child_json(["--stages", str(rows), str(cache_dir)])}
    shutil.rmtree(cache_dir)
    stages["cache built now (blocks)"] = child_json(["--stages", str(rows), str(cache_dir)])
    if memmap_build:
        shutil.rmtree(cache_dir)
        stages["cache built now (open_memmap, before the change)"] = child_json(["--stages", str(rows), str(cache_dir), "--memmap"])
        shutil.rmtree(cache_dir)
        patched = f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_image_cache as b; b.use_memmap_build(); from gramkd.cli import main; main()"
        runs["first build, open_memmap (before the change)"] = run_and_measure([sys.executable, "-c", patched, *args], workdir)
    return {"runs": runs, "stages": stages}


def child_json(flags: list[str]) -> dict:
    """Run this script with hidden `flags` in a child process; the JSON object on its last line of stdout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, *flags], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{__file__} {' '.join(flags)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def use_memmap_build() -> None:
    """Put back the build as it was before it wrote in blocks: decoded rows assigned into an
    np.lib.format.open_memmap(mode="w+") of the whole file, flushed at the end."""
    from gramkd.data.image_text import image_cache

    def build(file, records, size, channels):
        temporary = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        try:
            out = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=(len(records.images), channels, *size))
            for row in range(len(records.images)):
                out[row] = image_cache.decode_checked(records, row, size, channels)
            out.flush()
            del out
            os.replace(temporary, file)
        finally:
            temporary.unlink(missing_ok=True)

    image_cache._build = build


def print_stages(rows: int, cache_dir: Path) -> None:
    """Peak RSS (MB) of this process after each step of an ImageTextDataModule on a built cache, as JSON."""
    import resource

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    import torch

    from gramkd.data.image_text import ImageTextDataModule

    torch.set_num_threads(1)
    stages = {"imports": peak()}
    data = ImageTextDataModule(
        path=str(memes_folder(rows)), format="hateful_memes", images=str(ROOT), image_size=(SIZE, SIZE), cache_dir=str(cache_dir)
    )
    assert data.prepared.vocab_size > 0
    stages["layout read, texts tokenised"] = peak()
    data.setup("fit")
    stages["setup()"] = peak()
    for _ in data.train_dataloader():
        pass
    stages["one epoch of the train loader"] = peak()
    print(json.dumps(stages))


# -- the report --------------------------------------------------------------------------------------
def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def report(args, sizes: dict, generated: dict, generate_seconds: float, speed: dict, memory: dict, loads: list[str], seconds: float) -> str:
    small, big = sizes["memory_rows"]
    command = " ".join(
        ["python benchmarks/bench_image_cache.py", *(["--quick"] if args.quick else []), *(["--memmap-build"] if args.memmap_build else [])]
    )
    s = speed
    lines = [
        "# The preprocessed image cache of `data=image_text`",
        "",
        f"`{command}` (OMP_NUM_THREADS=1, one process at a time). Data: generated Hateful Memes folders in "
        f"{ROOT} (`train.jsonl`, `dev_seen.jsonl`, `test_seen.jsonl` of {HELD_OUT} rows each; texts of 3-11 random "
        f"words; labels 0/1) whose images are {SIZE}x{SIZE} RGB PNGs (a noisy colour gradient, a disc, a digit; "
        f"~{generated['png_kb']:.0f} kB each). Writing the {generated['train'] + 2 * HELD_OUT:,} PNGs took "
        f"{generated['seconds']:.0f} s in all ({1e3 * generated['seconds'] / (generated['train'] + 2 * HELD_OUT):.1f} ms "
        f"per image, one thread); this run wrote them in {generate_seconds:.0f} s (0 s when reused).",
        "",
        "## 1. Speed: an epoch over the cache against decoding the images",
        "",
        f"One epoch over {s['rows']:,} training examples, batch {s['batch_size']}, shuffled by the data module's "
        f"sampler (the same batches in the same order for both), every batch's tensors touched (summed). "
        f"**cache**: the real `train_dataloader()` of an `ImageTextDataModule` whose cache is built "
        f"({s['cache_mb']:.0f} MB uint8, read by rows with `pread`). **decode**: a Dataset that opens each PNG with "
        f"Pillow, converts it to RGB, resizes it to {SIZE}x{SIZE} (bilinear) and normalises it; its batches are checked "
        f"equal to the cache's, pixels included. A warm-up epoch of each first (files in the page cache for both), "
        f"then {s['rounds']} interleaved rounds; median. Since the PNGs are already {SIZE}x{SIZE} Pillow's resize "
        f"is a copy: this is the cheapest decode there is, real images that must be scaled down cost more.",
        "",
        "| loader | epoch, median (s) | all rounds (s) | images/s |",
        "| --- | ---: | --- | ---: |",
    ]
    for name in ("cache", "decode"):
        rounds = ", ".join(f"{t:.2f}" for t in s["times"][name])
        lines.append(f"| {name} | {s['median'][name]:.2f} | {rounds} | {s['images_per_s'][name]:,.0f} |")
    verdict = "PASS" if s["ratio"] >= 3 else "FAIL"
    lines += [
        "",
        f"**{verdict}** (wanted: at least 3x): an epoch over the cache is **{s['ratio']:.1f}x** faster than decoding "
        f"({s['images_per_s']['cache']:,.0f} against {s['images_per_s']['decode']:,.0f} images/s). "
        f"`setup()` of the data module took {s['setup_seconds']:.1f} s in this run ("
        + (
            f"it decoded the {s['rows']:,} training images into the cache: {s['rows'] / s['setup_seconds']:,.0f} images/s)."
            if s["built_now"]
            else "the cache was there from an earlier run: opened, not built)."
        ),
        "",
        "## 2. Memory: peak RSS of a one-epoch fit, 2 sizes",
        "",
        "Each row is one child process:",
        "",
        "```",
        " ".join(["gramkd", *fit_args(Path(f"{ROOT}/memes-N"), Path("CACHE"), sizes["batch_size"])]),
        "```",
        "",
        f"(then the test of the best checkpoint, as `gramkd fit` does; val and test have {HELD_OUT} rows, so the "
        f"epoch is the train split). **first build**: CACHE empty, so setup decodes every image into the cache first; "
        f"**cache built**: the same command again. Peak RSS is the child's `ru_maxrss`; anonymous and file-backed "
        f"peaks are sampled every 0.05 s from `/proc/<pid>/status`.",
        "",
        "| training images | cache on disk (MB) | run | peak RSS (MB) | peak anonymous (MB) | peak file-backed (MB) | wall time (s) |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for rows in (small, big):
        for run, m in memory[rows]["runs"].items():
            lines.append(
                f"| {rows:,} | {rows * 3 * SIZE * SIZE / MB:.0f} | {run} | {m['peak_rss'] / MB:.0f} | {m['peak_anon'] / MB:.0f} "
                f"| {m['peak_file'] / MB:.0f} | {m['seconds']:.0f} |"
            )
    lines.append("")
    for run in memory[big]["runs"]:
        growth = (memory[big]["runs"][run]["peak_rss"] - memory[small]["runs"][run]["peak_rss"]) / MB
        anon = (memory[big]["runs"][run]["peak_anon"] - memory[small]["runs"][run]["peak_anon"]) / MB
        verdict = "PASS" if growth < 50 else "FAIL"
        lines.append(
            f"- **{run}: {verdict}** (wanted: less than 50 MB): {big:,} against {small:,} training images, peak RSS "
            f"{growth:+.0f} MB (anonymous {anon:+.0f} MB)."
        )
    lines += [
        "",
        "Where the memory goes: the peak RSS (MB) of a child that runs the data module alone, step by step (no net, "
        "no trainer): on the built cache; on an empty cache folder, so that `setup()` decodes every image (the build "
        "as it is now: plain writes of 4 MB blocks)"
        + (
            "; and the same with the build as it was (rows assigned into an `open_memmap` of the whole file)." if args.memmap_build else "."
        ),
        "",
        f"| cache | step | {small:,} images | {big:,} images | difference |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for cache, stages in memory[small]["stages"].items():
        for stage, small_peak in stages.items():
            big_peak = memory[big]["stages"][cache][stage]
            lines.append(f"| {cache} | {stage} | {small_peak:.0f} | {big_peak:.0f} | {big_peak - small_peak:+.0f} |")
    lines += ["", *DIAGNOSIS]
    lines += [
        "",
        f"The whole run took {seconds / 60:.1f} min. Load (`uptime`, 1/5/15 min) during it: {'; '.join(loads)}. "
        f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, numpy {np.__version__}; measured {time.strftime('%Y-%m-%d')}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help="the report (default: benchmarks/image_cache.md; --quick: none)")
    parser.add_argument("--memmap-build", action="store_true", help="also time a first build with the old open_memmap build")
    parser.add_argument("--stages", nargs=2, metavar=("ROWS", "CACHE_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--memmap", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--speed", nargs=3, type=int, metavar=("ROWS", "ROUNDS", "BATCH_SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages:
        if args.memmap:
            use_memmap_build()
        print_stages(int(args.stages[0]), Path(args.stages[1]))
        return
    if args.speed:
        print(json.dumps(measure_speed(*args.speed)))
        return
    started = time.perf_counter()
    sizes = QUICK if args.quick else FULL
    out = args.out or (None if args.quick else HERE / "image_cache.md")
    loads = [f"start {load_average()}"]

    needed = max(sizes["speed_rows"], *sizes["memory_rows"])
    before = json.loads((ROOT / "generated.json").read_text())["seconds"] if (ROOT / "generated.json").is_file() else 0.0
    generated = ensure_images(needed)
    generated["png_kb"] = (ROOT / image_name(0, "train")).stat().st_size / 1024
    generate_seconds = generated["seconds"] - before
    print(f"images ready ({generate_seconds:.0f} s)", flush=True)

    speed = child_json(["--speed", str(sizes["speed_rows"]), str(sizes["rounds"]), str(sizes["batch_size"])])
    loads.append(f"after the speed rounds {load_average()}")
    print(json.dumps(speed), flush=True)

    workdir = ROOT / ("work-quick" if args.quick else "work")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    memory = {}
    for rows in sizes["memory_rows"]:
        memory[rows] = measure_memory(rows, sizes["batch_size"], workdir, args.memmap_build)
        loads.append(f"after the {rows:,}-image fits {load_average()}")
        print(rows, json.dumps(memory[rows]), flush=True)
    shutil.rmtree(workdir, ignore_errors=True)  # the 50 000-image caches are large

    text = report(args, sizes, generated, generate_seconds, speed, memory, loads, time.perf_counter() - started)
    if out is not None:
        out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
