"""A real Kannel gateway on loopback for tests: bearerbox + smsbox + our own fake-SMSC client.

`KannelGateway(run_dir, service_url)` writes kannel.conf (reference/kannel.md) with free ports,
starts bearerbox, then smsbox, connects a `FakeSmsc` that speaks the fake-SMSC line protocol,
and stops everything by pid. Skip tests with `requires_kannel` when the binaries are absent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_from_bytes, unquote_to_bytes

import aiohttp
import pytest

from warning.redis_server import free_port

BEARERBOX = shutil.which("bearerbox") or "/usr/sbin/bearerbox"
SMSBOX = shutil.which("smsbox") or "/usr/sbin/smsbox"
HAVE_KANNEL = os.access(BEARERBOX, os.X_OK) and os.access(SMSBOX, os.X_OK)
requires_kannel = pytest.mark.skipif(
    not HAVE_KANNEL, reason="Kannel is not installed (apt-get install kannel kannel-extras; scripts/test.sh does)")
USERNAME, PASSWORD = "tester", "foobar-kannel-secret"
SHORT_CODE = "10086"

CONF = """\
group = core
admin-port = {admin}
admin-interface = 127.0.0.1
admin-password = adminpw
status-password = statuspw
admin-allow-ip = "127.0.0.1"
smsbox-port = {box}
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
dlr-storage = internal
log-file = "{run}/bearerbox.log"
log-level = 1
access-log = "{run}/access.log"

group = smsc
smsc = fake
smsc-id = FAKE
port = {smsc}
our-host = 127.0.0.1
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {box}
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
mo-recode = true
http-request-retry = 3
http-queue-delay = 2
log-file = "{run}/smsbox.log"
log-level = 1
access-log = "{run}/smsbox-access.log"

group = sendsms-user
username = {user}
password = {password}
concatenation = true
default-sender = 12345
max-messages = 10

group = sms-service
keyword = default
catch-all = true
max-messages = 0
accept-x-kannel-headers = true
get-url = "{service}/hooks/kannel/mo?from=%p&to=%P&text=%a&coding=%c&charset=%C&smsc=%i&ts=%T&id=%I"
"""


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, from /proc (a connect() would be taken for the SMSC client)."""
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(parts[1].endswith(want) and parts[3] == "0A" for parts in (line.split() for line in lines)):
            return True
    return False


async def _wait_for(what: str, check: Callable[[], bool | Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ok = check()
        if ok if isinstance(ok, bool) else await ok:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"kannel: {what} not ready after {timeout_s}s")


@dataclass
class MT:
    """A message bearerbox handed to the fake SMSC."""

    sender: str
    to: str
    coding: str  # text | data | ucs-2 | udh
    payload: bytes
    udh: bytes = b""

    @property
    def text(self) -> str:
        return self.payload.decode("utf-16-be") if self.coding == "ucs-2" else self.payload.decode("latin-1")


def _dec(s: str) -> bytes:
    return unquote_to_bytes(s.replace("+", "%20"))


def parse_mt(line: str) -> MT:
    """One fake-SMSC MT line: `from to text|data|ucs-2 payload` or `from to udh <udh> data|ucs-2 <payload>`."""
    sender, to, kind, rest = line.split(" ", 3)
    if kind == "udh":
        udh, kind2, payload = rest.split(" ", 2)
        return MT(sender, to, kind2, _dec(payload), _dec(udh))
    return MT(sender, to, kind, rest.encode("latin-1") if kind == "text" else _dec(rest))


@dataclass
class FakeSmsc:
    """The fake-SMSC client: collects MTs, injects MOs."""

    port: int
    received: list[MT] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._reader is not None
        while line := await self._reader.readline():
            text = line.decode("latin-1").rstrip("\r\n")
            if text:
                self.received.append(parse_mt(text))
                self.arrived.set()

    async def send_mo(self, sender: str, to: str, text: str) -> None:
        """A phone's reply: UCS-2 for anything outside ASCII, as handsets send Chinese."""
        assert self._writer is not None
        if text.isascii():
            line = f"{sender} {to} text {text}\n"
        else:
            line = f"{sender} {to} ucs2 {quote_from_bytes(text.encode('utf-16-be'), safe='')}\n"
        self._writer.write(line.encode())
        await self._writer.drain()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, ConnectionError):
                pass


class KannelGateway:
    """bearerbox + smsbox on free loopback ports, with the fake SMSC connected."""

    def __init__(self, run_dir: Path, service_url: str) -> None:
        self.run_dir = run_dir
        self.ports = {k: free_port() for k in ("admin", "box", "sendsms", "smsc")}
        self.conf = run_dir / "kannel.conf"
        self.conf.write_text(CONF.format(run=run_dir, service=service_url.rstrip("/"), user=USERNAME,
                                         password=PASSWORD, **self.ports))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.smsc = FakeSmsc(self.ports["smsc"])

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sendsms']}/cgi-bin/sendsms"

    def _spawn(self, binary: str, name: str) -> None:
        with (self.run_dir / f"{name}.out").open("wb") as out:
            self.procs.append(subprocess.Popen([binary, "-v", "1", str(self.conf)], stdout=out,
                                               stderr=subprocess.STDOUT, cwd=self.run_dir))

    async def start(self) -> None:
        self._spawn(BEARERBOX, "bearerbox")
        await _wait_for("bearerbox", lambda: _listening(self.ports["admin"]) and _listening(self.ports["box"])
                        and _listening(self.ports["smsc"]))
        self._spawn(SMSBOX, "smsbox")
        await _wait_for("smsbox", lambda: _listening(self.ports["sendsms"]))
        await self.smsc.connect()
        status = f"http://127.0.0.1:{self.ports['admin']}/status.txt?password=statuspw"
        await _wait_for("the fake SMSC link", lambda: _fetch_online(status))

    async def stop(self) -> None:
        await self.smsc.close()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _fetch_online(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            body = await resp.text()
    except aiohttp.ClientError:
        return False
    return "FAKE" in body and "online" in body
