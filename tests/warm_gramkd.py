"""Runs `gramkd` commands for the tests as processes forked from one warm interpreter.

A `gramkd fit` spends most of a tiny test run importing torch and Lightning (about 10 s of CPU on a
slow machine). This server imports what a run imports once, then forks a fresh process per
command: its own pid and process group, cwd, environment, argv, stdin from /dev/null, stdout and
stderr, and exit status, with every module as importing it leaves it (nothing else has run in the
server). What it cannot give a run is a start-up of its own: settings read when a process starts
(malloc's, OpenMP's, PYTHONPATH) are the server's, so `conftest.run_gramkd` starts a fresh process
for those. The server refuses to serve if its imports write anything (a fresh process would show
that output, and these forks would not).

    python warm_gramkd.py SOCKET    (prints "ready" once it serves, "cold: …" if it will not)

Protocol: one JSON request per connection, {"argv", "cwd", "env", "timeout"}; one JSON answer,
{"returncode", "stdout", "stderr"} or {"timeout": true, "stdout", "stderr"}. `WarmGramkd` is the
tests' side of it.
"""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import redirect_stderr, redirect_stdout


def warm_up() -> str:
    """Import what `gramkd fit` and `gramkd test` import; what that wrote (it should be nothing)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        import gramkd.cli  # noqa: F401
        import gramkd.ddp  # noqa: F401
        import gramkd.train  # noqa: F401
    return out.getvalue() + err.getvalue()


def serve(path: str) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the reporters
    tests = os.getppid()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(8)
        server.settimeout(5.0)
        print("ready", flush=True)
        while os.getppid() == tests:  # outlive the tests' process by 5 s at most, however it ends
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            if os.fork() == 0:  # a reporter: runs one request in a child of its own and answers
                server.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                request = json.loads(connection.makefile("rb").readline())
                folder = tempfile.mkdtemp()
                out, err = os.path.join(folder, "out"), os.path.join(folder, "err")
                pid = os.fork()
                if pid == 0:
                    connection.close()
                    run(request, out, err)  # exits by unwinding from here, as a script's process would
                answer(connection, wait(pid, request["timeout"]), folder)
            connection.close()
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)  # the tests' process is gone


def answer(connection: socket.socket, outcome: dict, folder: str) -> None:
    """In a reporter: send what the run did, and exit."""
    try:
        outcome.update(stdout=read(os.path.join(folder, "out")), stderr=read(os.path.join(folder, "err")))
        shutil.rmtree(folder, ignore_errors=True)
        connection.sendall(json.dumps(outcome).encode() + b"\n")
    finally:
        os._exit(0)


def run(request: dict, out: str, err: str) -> None:
    """In the grandchild: become the `gramkd` process the request describes, and exit as it does."""
    os.setsid()  # its own process group, so that a time-out stops the ranks and workers it starts too
    for fd, name, flags in ((0, os.devnull, os.O_RDONLY), (1, out, os.O_WRONLY | os.O_CREAT), (2, err, os.O_WRONLY | os.O_CREAT)):
        opened = os.open(name, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(request["cwd"])  # SIGCHLD is back to its default already: the reporter reset it
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    from gramkd.cli import main

    sys.exit(main())  # the interpreter then exits as the console script's would: atexit, threads, flush


def wait(pid: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"returncode": os.waitstatus_to_exitcode(status)}
        time.sleep(0.05)
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return {"timeout": True}


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read()


# environment read when a run asks for it, not at start-up: ours, W&B's, Hydra's, pytest's name of
# the running test, and what in-process fits leave behind in this process (Lightning's seed, the
# cuBLAS setting of deterministic=True)
RUNTIME_SETTINGS = ("GRAMKD_", "WANDB_", "HYDRA_", "PYTEST_", "PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG")


class WarmGramkd:
    """The server of this test process, started at its first use with the environment of that
    request; a later request is served warm when its environment differs from that one only in
    `RUNTIME_SETTINGS`, and otherwise answered None (the caller starts a fresh process)."""

    def __init__(self):
        self.server, self.env, self.cold = None, None, os.environ.get("GRAMKD_TEST_COLD_START") == "1"
        self.starting = threading.Lock()  # tests may run commands from several threads

    def run(self, argv: list[str], cwd, env: dict, timeout: float) -> "subprocess.CompletedProcess | None":
        with self.starting:
            if self.server is None and not self.cold:
                self._start(env)
        if self.cold or _start_up(env) != _start_up(self.env):
            return None
        request = {"argv": argv, "cwd": str(cwd), "env": env, "timeout": timeout}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout + 60)
            client.connect(self.path)
            client.sendall(json.dumps(request).encode() + b"\n")
            reply = json.loads(client.makefile("rb").readline())
        if reply.get("timeout"):
            raise subprocess.TimeoutExpired(argv, timeout, output=reply["stdout"], stderr=reply["stderr"])
        return subprocess.CompletedProcess(argv, reply["returncode"], reply["stdout"], reply["stderr"])

    def _start(self, env: dict) -> None:
        self.folder = tempfile.mkdtemp(prefix="warm-gramkd-")
        self.path, self.env = os.path.join(self.folder, "socket"), dict(env)
        command = [sys.executable, __file__, self.path]
        self.server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first = self.server.stdout.readline().strip()
        if first != "ready":
            self.cold = True
            print(f"warm_gramkd: every run starts cold ({first or self.server.stdout.read()[-2000:]})", file=sys.stderr)

    def close(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.wait()
            shutil.rmtree(self.folder, ignore_errors=True)


def _start_up(env: dict) -> dict:
    return {k: v for k, v in env.items() if not k.startswith(RUNTIME_SETTINGS)}


if __name__ == "__main__":
    written = warm_up()
    if written:
        print(f"cold: importing gramkd wrote {written!r}", flush=True)
        sys.exit(0)
    serve(sys.argv[1])
