"""The head serves HTTPS through uvicorn's TLS options (``--ssl-certfile``/``--ssl-keyfile``): a client that
trusts the certificate talks to it, plain HTTP on the same port is refused, and tasks run as before."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from lattice import LatticeClient, task
from tests.headproc import HeadProcess


class TLSHead(HeadProcess):
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@task(outputs=["x"], cpu=0)
def answer(params):
    return {"x": 42}


def test_the_head_serves_https_with_uvicorns_tls_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=lattice",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # httpx (the test's and the SDK's) trusts it from here
    head = TLSHead(tmp_path / "head", extra_args=["--num-cpus", "1", "--ssl-certfile", str(cert),
                                                  "--ssl-keyfile", str(key)]).start()
    try:
        assert httpx.get(f"{head.url}/health", timeout=10).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{head.port}/health", timeout=5)
        with LatticeClient(head.url, token=head.token, progress=False) as client:
            wf = client.create_workflow()
            wf.add_task(answer, name="answer")
            assert wf.get_results(wf.run(), timeout=120)["x"] == 42
    finally:
        head.stop()
