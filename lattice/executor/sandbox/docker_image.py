"""Build the default task image for level ``docker`` locally (no registry needed).

The image ``lattice-sandbox:local`` is nearly empty: a root filesystem skeleton (merged-/usr links,
``/etc/passwd`` with the unprivileged user 65534, ``/work`` and ``/lattice/io`` mount points). At run
time the worker's own Python, its import paths and ``/usr`` are bind-mounted read-only into it
(``SandboxConfig.docker_mount_host_python``), so the task sees exactly the packages the worker has,
and nothing of the host is writable.

A custom image (``SandboxConfig(docker_image="my/image:tag", docker_mount_host_python=False)``) must
have ``python3`` on its PATH with ``lattice-agent`` and the task's packages installed, a user 65534
able to write ``/work``, and no need of the network. Build the default one with::

    python -m lattice.executor.sandbox.docker_image [--tag lattice-sandbox:local] [--host unix:///...]
"""

from __future__ import annotations

import argparse
import io
import tarfile
import time
from typing import Any

from lattice.executor.sandbox.config import DEFAULT_DOCKER_IMAGE

SANDBOX_UID = 65534

_PASSWD = "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/work:/usr/sbin/nologin\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"
_DIRS = {
    "usr": 0o755,
    "etc": 0o755,
    "tmp": 0o1777,
    "work": 0o1777,
    "lattice": 0o755,
    "lattice/io": 0o755,
    "proc": 0o555,
    "sys": 0o555,
    "dev": 0o755,
    "root": 0o711,
}
_LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}


def rootfs_tar() -> bytes:
    """The image's whole root filesystem as a tar archive (a few hundred bytes)."""
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, mode in _DIRS.items():
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, now
            tar.addfile(info)
        for name, target in _LINKS.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, now
            tar.addfile(info)
        for name, text in (("etc/passwd", _PASSWD), ("etc/group", _GROUP)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_image(tag: str = DEFAULT_DOCKER_IMAGE, client: Any = None, host: str | None = None) -> str:
    """``docker import`` the skeleton as ``tag``; returns the image id. Idempotent."""
    import docker

    client = client or (docker.DockerClient(base_url=host) if host else docker.from_env())
    repository, _, version = tag.partition(":")
    client.api.import_image_from_data(rootfs_tar(), repository=repository, tag=version or "latest")
    return client.images.get(tag).id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build Lattice's docker sandbox image locally.")
    parser.add_argument("--tag", default=DEFAULT_DOCKER_IMAGE)
    parser.add_argument("--host", default=None, help="Docker engine URL (default: DOCKER_HOST)")
    args = parser.parse_args(argv)
    print(build_image(args.tag, host=args.host))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
