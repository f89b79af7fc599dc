"""`gramkd fit|test …`: a thin shell over Hydra apps whose configs ship inside the package."""

import argparse
import os
import sys
from pathlib import Path

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from gramkd.config import available, config_dir, register_resolvers
from gramkd.errors import GramkdError

COMMANDS = {
    "fit": "train a net, or distil a student: gramkd fit [experiment=NAME] [overrides…] [-m]",
    "test": "evaluate a checkpoint on the test split: gramkd test ckpt_path=FILE [overrides…]",
    "report": "tables and a plot of sweeps, one row per method: gramkd report DIR [DIR …] [--out DIR]",
    "data": "write a generated benchmark: gramkd data digits-nlvr DIR [--seed N]",
}
GENERATED_DATA = ("digits-nlvr",)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    command, *overrides = argv
    if command == "report":
        run_report(overrides)
        return
    if command == "data":
        run_data(overrides)
        return
    try:
        if command not in COMMANDS:
            raise GramkdError(f"unknown command '{command}'; choose one of: {', '.join(COMMANDS)} (see gramkd --help)")
        check_choices(overrides)
        check_run_dir_is_new(overrides)
    except GramkdError as err:
        fail(err)
    run_hydra_app(command, overrides)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one GramkdError line."""

    def error(self, message: str):
        raise GramkdError(f"{message} (see gramkd report --help)")


def report_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="gramkd report",
        description="Aggregate the jobs of one or more multirun folders (a job: a folder with .hydra/config.yaml; "
        "finished: with metrics.json) into one row per method: results.md, results.csv and results.png.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="a multirun folder, e.g. logs/mfeat/ablation/multiruns/<time>")
    parser.add_argument("--out", metavar="DIR", default=None, help="where to write the three files (default: the first DIR)")
    parser.add_argument(
        "--baseline", metavar="METHOD", default=None, help="the row every other is compared with, seed by seed (default: kd)"
    )
    return parser


def run_report(args: list[str]) -> None:
    try:
        parsed = report_parser().parse_args(args)
        from gramkd.report import report

        report(parsed.dirs, parsed.out, **({"baseline": parsed.baseline} if parsed.baseline else {}))
    except GramkdError as err:
        fail(err)


class _DataArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise GramkdError(f"{message} (see gramkd data --help)")


def data_parser() -> argparse.ArgumentParser:
    parser = _DataArgumentParser(
        prog="gramkd data",
        description="Write a generated benchmark into a new folder. digits-nlvr: NLVR2-style statements about pairs of "
        "real handwritten digits (UCI mfeat-pix), 8000 / 2000 / 4000 examples, read with data=image_text data.path=DIR.",
    )
    parser.add_argument("name", choices=GENERATED_DATA, help="the benchmark")
    parser.add_argument("dir", metavar="DIR", help="a new or empty folder to write it into")
    parser.add_argument("--seed", type=int, default=0, help="which digits, pairs and statements (default 0)")
    return parser


def run_data(args: list[str]) -> None:
    try:
        parsed = data_parser().parse_args(args)
        from gramkd.data.digits_nlvr import generate_digits_nlvr

        folder = generate_digits_nlvr(parsed.dir, seed=parsed.seed)
        print(f"wrote {parsed.name} (seed {parsed.seed}) to {folder}")
    except GramkdError as err:
        fail(err)


def usage() -> str:
    lines = ["usage: gramkd COMMAND [overrides…]", "", "commands:"]
    lines += [f"  {name:<8}{text}" for name, text in COMMANDS.items()]
    lines += ["", "experiments (experiment=NAME):"] + [f"  {name}" for name in available("experiment")]
    lines += ["", "`gramkd fit --help` shows every config group and the composed config; `-m` runs a sweep."]
    return "\n".join(lines)


def check_choices(overrides: list[str]) -> None:
    """Refuse an unknown option of a config group (experiment=…, data=…) up front, in one line that lists the choices."""
    for override in overrides:
        key, _, value = override.partition("=")
        group = key.lstrip("+~").split("@")[0]
        if not value or group.startswith("hydra") or value[0] in "[{" or "(" in value or not (config_dir() / group).is_dir():
            continue  # not a group choice, or a sweep expression (glob(…), choice(…), …) that Hydra expands
        choices = available(group)
        for name in value.split(","):
            if name not in choices and name != "null":
                raise GramkdError(f"unknown {group} '{name}'; choose one of: {', '.join(choices)}")


def check_run_dir_is_new(overrides: list[str]) -> None:
    """Refuse `hydra.run.dir=DIR` when DIR already holds a run: Hydra would write over its config
    and logs. (Time-stamped run dirs are new by construction; DDP's own relaunch is let through.)"""
    if "LOCAL_RANK" in os.environ:
        return
    for override in overrides:
        key, _, value = override.partition("=")
        if key == "hydra.run.dir" and value:
            folder = Path(value.strip("'\""))
            if (folder / "metrics.json").exists() or (folder / "checkpoints").exists() or (folder / ".hydra").exists():
                raise GramkdError(f"{folder} already holds a run; pick another hydra.run.dir (or resume it with ckpt_path=last)")


def run_hydra_app(command: str, overrides: list[str]) -> None:
    register_resolvers()
    full_argv = [sys.argv[0], command, *overrides]

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=command)
    def app(cfg: DictConfig):
        # torch and Lightning load once the config has composed: a bad override fails in a second, not ten
        from gramkd import train
        from gramkd.ddp import isolated_ddp_job, relaunch_argv
        from gramkd.quiet import lightning_logs_once

        lightning_logs_once()
        task = {"fit": train.fit, "test": train.test}[command]
        register_resolvers()  # launchers may run the job in a fresh process
        sys.argv = relaunch_argv(full_argv[0], command, overrides)  # what Lightning's DDP re-runs for other ranks
        try:
            with isolated_ddp_job():
                return task(cfg)
        except GramkdError as err:
            fail(err)
        except InstantiationException as err:  # hydra's instantiate wraps what a constructor raised
            cause = user_error(err)
            if cause is None:
                raise
            fail(cause)
        except MissingMandatoryValue as err:
            fail(GramkdError(f"{err.full_key} is required: pass {err.full_key}=VALUE"))

    sys.argv = [full_argv[0], *overrides]  # Hydra parses sys.argv
    try:
        app()
    finally:
        sys.argv = full_argv


def user_error(err: BaseException) -> GramkdError | None:
    """The GramkdError behind an exception (following `raise … from`), if there is one."""
    while err is not None and not isinstance(err, GramkdError):
        err = err.__cause__
    return err


def fail(err: GramkdError) -> None:
    print(f"gramkd: error: {err}", file=sys.stderr)
    raise SystemExit(2)
