"""Item 4: the network with one modality present at a time, batched (`single_modality_outputs`:
one forward over M·B rows) against a loop of M forwards (modality m alone in forward m).

mfeat, M = 6, batch 64, the student and teacher presets of kd_gram: forward + backward through
the student (a fixed random weighting of the [B, M, C] logits as the loss) and forward under
no_grad through the teacher, as the MSD term and the Gram term with `source=modality_logits`
use them. The two give the same outputs (checked here to float tolerance). Interleaved rounds.

    python benchmarks/bench_single_modality.py [--repeats 15] [--number 10]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402

from gramkd.nets import MultimodalOutput  # noqa: E402
from gramkd.nets.subsets import single_modality_outputs  # noqa: E402

from common import emit, interleaved, load, median, mfeat_kd_gram  # noqa: E402


def looped_single_modality_outputs(net, inputs, present) -> MultimodalOutput:
    """The reference: M forwards of `net`, forward m with only modality m present."""
    names = net.modality_names
    logits, tokens = [], []
    for m, name in enumerate(names):
        only = {n: p & (n == name) for n, p in present.items()}
        out = net(inputs, only)
        logits.append(out.logits)
        tokens.append(out.modality_features[:, m])
    mask = torch.stack([present[n] for n in names], dim=1)
    return MultimodalOutput(torch.stack(logits, 1), torch.stack(tokens, 1), mask, None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--number", type=int, default=10)
    args = parser.parse_args()
    load_before = load()
    setup = mfeat_kd_gram()
    student, teacher = setup.student.train(), setup.teacher
    batch = next(iter(setup.datamodule.train_dataloader()))
    inputs, present = batch["inputs"], batch["present"]
    num = len(student.modality_names)
    weight = torch.randn(len(batch["target"]), num, setup.datamodule.num_classes, generator=torch.Generator().manual_seed(0))

    # same outputs, to float tolerance
    with torch.no_grad():
        checks = {}
        for who, net in (("student", student), ("teacher", teacher)):
            batched, looped = single_modality_outputs(net, inputs, present), looped_single_modality_outputs(net, inputs, present)
            checks[who] = max(
                float((batched.logits - looped.logits).abs().max()),
                float((batched.modality_features - looped.modality_features).abs().max()),
            )
            assert torch.allclose(batched.logits, looped.logits, atol=1e-5, rtol=1e-4), who
            assert torch.allclose(batched.modality_features, looped.modality_features, atol=1e-5, rtol=1e-4), who

    def student_pass(fn):
        def run():
            student.zero_grad(set_to_none=True)
            (fn(student, inputs, present).logits * weight).sum().backward()

        return run

    def teacher_pass(fn):
        def run():
            with torch.no_grad():
                fn(teacher, inputs, present)

        return run

    def both(fn):
        s, t = student_pass(fn), teacher_pass(fn)
        return lambda: (s(), t())

    candidates = {
        "batched": both(single_modality_outputs),
        "looped": both(looped_single_modality_outputs),
        "batched_student": student_pass(single_modality_outputs),
        "looped_student": student_pass(looped_single_modality_outputs),
        "batched_teacher": teacher_pass(single_modality_outputs),
        "looped_teacher": teacher_pass(looped_single_modality_outputs),
    }
    times = interleaved(candidates, args.repeats, args.number, warmup=3)

    def speedup(a, b):
        return median([x / y for x, y in zip(times[a], times[b])])

    emit(
        {
            "item": "single_modality",
            "modalities": num,
            "batch_size": len(batch["target"]),
            "rounds": args.repeats,
            "calls_per_round": args.number,
            "max_abs_diff": checks,
            "ms": {k: 1000 * median(v) for k, v in times.items()},
            "speedup": {
                "student fwd+bwd + teacher fwd": speedup("looped", "batched"),
                "student fwd+bwd": speedup("looped_student", "batched_student"),
                "teacher fwd (no_grad)": speedup("looped_teacher", "batched_teacher"),
            },
            "load_before": load_before,
            "load_after": load(),
        }
    )


if __name__ == "__main__":
    main()
