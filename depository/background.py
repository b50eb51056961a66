"""The log's background work in a process of its own: the integrator, the notary, the monitoring scheduler.

Why a process of its own: these loops used to run as threads inside every API worker, where they
competed for the GIL with request handling; under load integration and witnessing fell behind the
deposits. Here they have an interpreter to themselves, and API processes only sequence and answer.

Two ways to run it:

* **standalone** -- `depository background` (`run_background(config)`), e.g. its own systemd unit next
  to API units started with `depository serve --background none`;
* **sidecar** -- `depository serve` (and plain gunicorn with `deploy/gunicorn.conf.py`) starts exactly
  one `python -m depository.background --sidecar --parent-pid PID` from the master's `when_ready` hook
  (`Sidecar` below, driven by `depository/server.py`), restarts it when it dies and stops it when the
  server stops. The sidecar exits by itself when its parent dies (PR_SET_PDEATHSIG on Linux, and a
  `getppid()` check everywhere).

Any number of these processes may run against one database: only the holder of the integrator lock
(`integrator_lock.py`) integrates; the others wait for it. SIGTERM/SIGINT stop one cleanly, releasing
the lock so another process takes over at once.

Supervision from inside gunicorn's master: the arbiter reaps *every* child with `waitpid(-1)`, so the
sidecar's exit status may be taken before we ask for it, and its pid may in principle be reused by a new
API worker. `Sidecar` therefore watches the process through a pidfd (Linux >= 5.3): it refers to that
one process whoever reaps it, and becomes readable when it exits. Without pidfds it falls back to
`Popen.poll()` (which reads "reaped by someone else" as exited).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from depository.config import Config
from depository.logging_setup import configure_logging

__all__ = ["Sidecar", "run_background", "sidecar_main"]

log = logging.getLogger("depository.background")  # also when run as __main__ (-m)

PARENT_CHECK_S = 1.0  # how often a sidecar looks whether its parent is still there
_PR_SET_PDEATHSIG = 1


def run_background(config: Config, *, parent_pid: int | None = None) -> int:
    """Run the integrator, the notary and the monitoring scheduler until SIGTERM/SIGINT (or, with
    `parent_pid`, until that parent process is gone); then stop them cleanly (the integrator lock is
    released). Returns the exit status."""
    from depository.wiring import build_services

    configure_logging(config.log_format, config.log_level)
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def _on_signal(signum: int, _frame: Any) -> None:
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)
    try:
        if parent_pid is not None:
            _die_with_parent()
            if os.getppid() != parent_pid:  # the parent died before the death signal was armed
                log.warning("background: parent %d is already gone; not starting", parent_pid)
                return 0
        services = build_services(config)
        try:
            services.start_background()
            log.info("background work started: integrator (waits for the integrator lock), notary, monitoring")
            while not stop.wait(PARENT_CHECK_S):
                if parent_pid is not None and os.getppid() != parent_pid:
                    log.warning("background: parent %d is gone; stopping", parent_pid)
                    break
            log.info("background work stopping")
        finally:
            services.close()  # stop_background releases the integrator lock: another process takes over now
        log.info("background work stopped")
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _die_with_parent() -> None:
    """Linux: ask the kernel for SIGTERM when the parent dies (the handler then stops us cleanly)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            log.warning("background: prctl(PR_SET_PDEATHSIG) failed (errno %d); relying on getppid()",
                        ctypes.get_errno())
    except (OSError, AttributeError):
        log.warning("background: prctl unavailable; relying on getppid()")


def sidecar_main(argv: Sequence[str]) -> int:
    """Entry of `python -m depository.background --sidecar --parent-pid PID`: the Config arrives as one
    JSON line on stdin (not argv or the environment, where its database password would be visible)."""
    args = list(argv)
    if "--sidecar" not in args or "--parent-pid" not in args:
        print("usage: python -m depository.background --sidecar --parent-pid PID  (Config JSON line on stdin)",
              file=sys.stderr)
        return 2
    parent_pid = int(args[args.index("--parent-pid") + 1])
    line = sys.stdin.buffer.readline()  # one line, not up to EOF: a forked API worker may hold the pipe open
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if not line.strip():
        return 0  # the parent went away before sending the configuration
    config = Config.model_validate_json(line)
    try:
        return run_background(config, parent_pid=parent_pid)
    except Exception:
        log.exception("background process failed")
        return 1
    finally:
        # Stopped: a repeated SIGTERM from the supervisor must not turn a clean exit into "killed".
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Sidecar:
    """The parent's side: one background process, restarted when it dies, stopped on `stop()`.

    One watcher thread owns the process: it waits for its exit on a pidfd (never holding the lock while it
    waits), restarts it, and terminates it when asked to stop. `should_run()` is consulted while watching:
    when it turns false (the server began to shut down) the sidecar is stopped at once and not restarted,
    so its integrator lock is free while API workers drain. Restarts back off from `restart_delay_s`
    (doubling up to `max_restart_delay_s`, reset after a run of a minute), so a process that cannot start
    (database down) does not spin.
    """

    def __init__(self, config: Config, *, should_run: Callable[[], bool] | None = None,
                 restart_delay_s: float = 0.5, max_restart_delay_s: float = 30.0, stop_timeout_s: float = 30.0,
                 poll_s: float = 0.5) -> None:
        self.config = config
        self._should_run = should_run or (lambda: True)
        self.restart_delay_s = restart_delay_s
        self.max_restart_delay_s = max_restart_delay_s
        self.stop_timeout_s = stop_timeout_s
        self.poll_s = poll_s
        self.restarts = 0
        self._lock = threading.Lock()  # held only for short state changes and signals, never while waiting
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pidfd: int | None = None
        self._status: str | None = None  # how the current process ended, once it has
        self._restart_now = False  # restart() asked for this exit: no backoff
        self._started_at = 0.0
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Spawn the process now (in the caller's thread) and watch it from a daemon thread."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._spawn_locked()
            self._thread = threading.Thread(target=self._watch, name="background-sidecar", daemon=True)
            self._thread.start()

    def restart(self) -> None:
        """Ask the current process to stop (SIGTERM); the watcher starts a new one. Returns at once."""
        with self._lock:
            if self._proc is not None and self._status is None:
                self._restart_now = True
                self._signal_locked(signal.SIGTERM)

    def stop(self) -> None:
        """Stop restarting, SIGTERM the process and wait for it (`stop_timeout_s`, then SIGKILL). Idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            with self._lock:
                self._signal_locked(signal.SIGTERM)  # at once, not at the watcher's next look
            thread.join(self.stop_timeout_s + 15)  # the watcher terminates the process on its way out
            if thread.is_alive():
                log.warning("background sidecar watcher did not finish")
                return
        self._thread = None
        self._terminate()  # no watcher ran (or it is this thread): do it here

    def forget(self) -> None:
        """In a forked child (an API worker): drop the parent's handles without touching the process."""
        self._stop.set()
        if self._proc is not None:
            self._proc.returncode = 0  # never waited for here (it is not our child)
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
        self._proc, self._pidfd, self._status, self._thread = None, None, None, None

    # ---- internals (the watcher thread, or stop() when there is none) ---------------------------------

    def _spawn_locked(self) -> None:
        cmd = [sys.executable, "-m", "depository.background", "--sidecar", "--parent-pid", str(os.getpid())]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, close_fds=True)  # stdout/stderr: the server's
        pidfd: int | None = None
        status: str | None = None
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(proc.pid)
            except ProcessLookupError:  # already dead and reaped by gunicorn: the watcher restarts it
                proc.returncode = -1
                status = "exited at once"
            except OSError:  # no pidfds on this kernel: poll() instead
                pidfd = None
        assert proc.stdin is not None
        try:
            proc.stdin.write(self.config.model_dump_json().encode() + b"\n")
            proc.stdin.close()
        except OSError:  # it died before reading; the watcher restarts it
            pass
        self._proc, self._pidfd, self._status, self._started_at = proc, pidfd, status, time.monotonic()
        log.info("background sidecar started (pid %d)", proc.pid)

    def _signal_locked(self, sig: int) -> None:
        proc = self._proc
        if proc is None or self._status is not None:
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, sig)  # the very process, even if its pid was reused
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def _exited(self, timeout: float) -> bool:
        """Wait up to `timeout` (without the lock) for the current process to exit; True once it has, with
        `_status` saying how."""
        proc, pidfd = self._proc, self._pidfd
        if proc is None or self._status is not None:
            return True
        if pidfd is None:
            code = proc.poll()  # ECHILD (gunicorn reaped it) reads as exited with status 0
            if code is None:
                time.sleep(timeout)
                code = proc.poll()
            if code is None:
                return False
            with self._lock:
                self._status = f"signal {-code}" if code < 0 else f"exit {code}"
            return True
        ready, _, _ = select.select([pidfd], [], [], timeout)
        if not ready:
            return False
        with self._lock:
            try:
                res = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
            except ChildProcessError:  # gunicorn's waitpid(-1) took its status first
                res = None
            if res is None:
                self._status = "status taken by gunicorn"
                proc.returncode = -1  # so Popen never waits for this pid again (it may be reused)
            elif res.si_code == os.CLD_EXITED:
                proc.returncode, self._status = res.si_status, f"exit {res.si_status}"
            else:
                proc.returncode, self._status = -res.si_status, f"signal {res.si_status}"
        return True

    def _forget_proc(self) -> None:
        with self._lock:
            if self._pidfd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._pidfd)
            self._proc, self._pidfd, self._status = None, None, None

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if not self._exited(0):
            with self._lock:
                self._signal_locked(signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout_s
            while not self._exited(0.2):
                if time.monotonic() > deadline:
                    log.warning("background sidecar (pid %d) did not stop; killing it", proc.pid)
                    with self._lock:
                        self._signal_locked(signal.SIGKILL)
                    self._exited(10)
                    break
        log.info("background sidecar (pid %d) stopped (%s)", proc.pid, self._status or "still running")
        self._forget_proc()

    def _serving(self) -> bool:
        try:
            return bool(self._should_run())
        except Exception:
            log.exception("background sidecar: should_run failed")
            return True

    def _watch(self) -> None:
        delay = self.restart_delay_s
        try:
            while not self._stop.is_set():
                if not self._serving():
                    log.info("server stopping: stopping the background sidecar")
                    return
                try:
                    if self._proc is not None:
                        if not self._exited(self.poll_s):
                            continue
                        pid, status = self._proc.pid, self._status
                        ran_s = time.monotonic() - self._started_at
                        self._forget_proc()
                        if self._stop.is_set():
                            log.info("background sidecar (pid %d) stopped (%s)", pid, status)
                            return
                        if ran_s >= 60 or self._restart_now:
                            delay = self.restart_delay_s
                        self._restart_now = False
                        log.warning("background sidecar (pid %d) exited (%s) after %.1f s; restarting in %.1f s",
                                    pid, status, ran_s, delay)
                    # else: the last spawn failed (logged below); try again after the delay
                    if self._stop.wait(delay):
                        return
                    delay = min(delay * 2, self.max_restart_delay_s)
                    if not self._serving():
                        continue  # the top of the loop stops
                    with self._lock:
                        if self._stop.is_set():
                            return
                        self._spawn_locked()
                        self.restarts += 1
                except Exception:  # the watcher must outlive any surprise (a failed fork): try again shortly
                    log.exception("background sidecar watcher")
                    self._stop.wait(1.0)
        finally:
            self._terminate()


if __name__ == "__main__":
    sys.exit(sidecar_main(sys.argv[1:]))
