"""Helpers for integration tests: run the real CLI, and check nothing of a cluster is left."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

VHPC = [sys.executable, "-m", "vhpc.cli"]
STATE_ROOT = Path(os.environ.get("VHPC_STATE_ROOT", "/var/lib/vhpc"))


def vhpc(*args: str, check: bool = True, timeout: float = 300,
         user_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `vhpc ARGS` as a user would; raise with its output if it fails and check is set."""
    env = dict(os.environ, **(user_env or {}))
    proc = subprocess.run([*VHPC, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"vhpc {' '.join(args)} failed ({proc.returncode}):\n"
                             f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def status(cluster: str) -> dict[str, Any]:
    """`vhpc status --json` of a cluster."""
    result: dict[str, Any] = json.loads(vhpc("-c", cluster, "status", "--json").stdout)
    return result


def leftovers(cluster: str) -> list[str]:
    """Everything of this cluster still on the host (empty when cleanly removed)."""
    found: list[str] = []
    cid = hashlib.sha1(cluster.encode()).hexdigest()[:4]
    for link in Path("/sys/class/net").iterdir():
        if link.name.startswith(f"vh{cid}"):
            found.append(f"link {link.name}")
    for root in Path("/sys/fs/cgroup").iterdir():
        for candidate in (root / f"vhpc-{cluster}", root.parent / "cgroup" / f"vhpc-{cluster}"):
            if candidate.exists():
                found.append(f"cgroup {candidate}")
    if Path(f"/sys/fs/cgroup/vhpc-{cluster}").exists():
        found.append(f"cgroup /sys/fs/cgroup/vhpc-{cluster}")
    state = STATE_ROOT / cluster
    mounts = Path("/proc/self/mountinfo").read_text()
    if str(state) + "/" in mounts or f" {state} " in mounts:
        found.append("mounts under the state directory")
    if state.exists():
        found.append(f"state directory {state}")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            zombie = "Z" in (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if not zombie and (str(state) + "/" in cmdline or (cmdline.endswith(f" {cluster} ")
                           and "vhpc.server.manager" in cmdline)):
            found.append(f"process {proc.name}: {cmdline[:80]}")
    return found


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: object, timeout: float) -> bool:
    """Poll `pred()` every 0.1 s until it is true (True) or `timeout` passes (False)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(pred) and pred():
            return True
        time.sleep(0.1)
    return False


def wait_until(cond: Callable[[], bool], timeout: float, what: str,
               every: float = 0.2) -> None:
    """Poll `cond()` every `every` seconds until it is true; fail the test after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def exec_on(cluster: str, node: str, *command: str, check: bool = True, user: bool = False
            ) -> subprocess.CompletedProcess[str]:
    """`vhpc -c CLUSTER exec NODE [--user cluser] -- COMMAND`."""
    extra = ("--user", "cluser") if user else ()
    return vhpc("-c", cluster, "exec", node, *extra, "--", *command, check=check)


def in_a_terminal(*args: str) -> str:
    """The output of `vhpc ARGS` run with a terminal on stdin/stdout (util-linux `script`).

    script's own stdin stays open and silent: at an EOF, script sends its terminal an end
    of input, which a raw terminal (`srun --pty`) may echo back (a harness byte)."""
    command = " ".join(shlex.quote(a) for a in [*VHPC, *args])
    silent, held = os.pipe()
    try:
        return subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True,
                              text=True, timeout=120, stdin=silent).stdout
    finally:
        os.close(silent)
        os.close(held)


def listening(port: int) -> bool:
    """True once something accepts TCP connections on 127.0.0.1:port."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


CHROMIUM = "/usr/bin/chromium"
# Debian's chromium, headless, with nothing that reaches beyond this machine.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def launch_chromium(playwright: Any) -> Any:
    """A headless Debian chromium for Playwright (`playwright install` cannot run here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def break_db_template(root: Path) -> None:
    """Plant a broken MariaDB template datadir (an ibdata1 that is no tablespace) in the
    private state root `root`: every accounting boot under that root fails the same way
    (mariadbd aborts), and no other cluster is affected."""
    from vhpc.services import db_template, mariadb

    os.environ["VHPC_STATE_ROOT"] = str(root)
    try:
        template = db_template.template_dir(mariadb.server_version(),
                                            db_template.slurm_version())
    finally:
        del os.environ["VHPC_STATE_ROOT"]
    for sub in ("mysql", mariadb.DATABASE):
        (template / sub).mkdir(parents=True)
    (template / "ibdata1").write_bytes(os.urandom(1 << 20))  # not a tablespace
