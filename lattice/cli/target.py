"""Which head a CLI command talks to, and with which token: the one rule every command shares.

* ``--url`` (or ``$LATTICE_URL``): that head. Its token is ``--token``, else ``$LATTICE_TOKEN``, else
  the token file of the data dir (``--data-dir``, ``$LATTICE_HOME`` or ``~/.lattice``), as the SDK does.
* otherwise the head of the data dir: its ``head.json`` must name a head that is alive (the recorded
  pid *and* its start time), and its own token file is used. There is no fallback to a default port:
  a data dir with no live head is :class:`HeadNotRunning` (exit status 3), naming the head that ran
  there last, so a data dir's token is never sent to some other head that happens to listen there.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from lattice.utils.home import default_home
from lattice.utils.procs import ProcessIdentity, recorded_identity

#: exit status of a command that needs a head when none runs (or none answers)
EXIT_NOT_RUNNING = 3


class HeadNotRunning(click.ClickException):
    """No head runs where the command looked; exit status 3 (``lattice status`` prints why)."""

    exit_code = EXIT_NOT_RUNNING


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def resolve_data_dir(data_dir: Path | None) -> Path:
    return (data_dir or default_home()).expanduser().resolve()


@dataclass(frozen=True)
class LocalHead:
    """What a data dir records about its head: the live one (``head.json``) and the last one."""

    data_dir: Path
    info: dict[str, Any] | None
    last: dict[str, Any] | None

    @classmethod
    def of(cls, data_dir: Path) -> LocalHead:
        return cls(data_dir, read_json(data_dir / "head.json"), read_json(data_dir / "head.last.json"))

    @property
    def identity(self) -> ProcessIdentity | None:
        return recorded_identity(self.info) if self.info else None

    @property
    def running(self) -> bool:
        """True when head.json names a process that is alive and is the one that wrote it."""
        identity = self.identity
        return identity is not None and identity.alive()

    @property
    def url(self) -> str | None:
        return str(self.info["url"]) if self.running and self.info else None

    def why_not(self) -> str:
        """One sentence: why no head of this data dir can be reached."""
        where = f"no Lattice head runs for {self.data_dir}"
        record = self.info or self.last
        if self.info and not self.running:
            return (f"{where}: head.json names pid {self.info.get('pid')} ({self.info.get('url')}), which is gone "
                    "(the head crashed or was killed); start it again with 'lattice start --head"
                    f"{self._dir_flag()}'")
        if record:
            return (f"{where}; the last head there was {record.get('url')} (pid {record.get('pid')}) and it stopped. "
                    f"Start it again with 'lattice start --head{self._dir_flag()}'")
        return (f"{where} (none was started there); start one with 'lattice start --head{self._dir_flag()}', "
                "or pass --url")

    def _dir_flag(self) -> str:
        return "" if self.data_dir == default_home().expanduser().resolve() else f" --data-dir {self.data_dir}"


@dataclass(frozen=True)
class Target:
    """The head a command talks to: its URL, the token to send, and the data dir the token came from."""

    url: str
    token: str | None
    data_dir: Path
    local: LocalHead

    def client(self, timeout: float = 30.0, unavailable_timeout: float = 0.0) -> Any:
        """A :class:`~lattice.LatticeClient` for this head (no progress bar: the CLI prints its own).

        ``unavailable_timeout=0``: a command answers at once (exit 3) when the head is down, instead of
        riding out an outage for minutes as a program's client does.
        """
        from lattice.client import LatticeClient

        return LatticeClient(self.url, token=self.token, timeout=timeout, progress=False, data_dir=self.data_dir,
                             unavailable_timeout=unavailable_timeout)


def resolve_target(url: str | None, token: str | None, data_dir: Path | None) -> Target:
    """The head named by ``--url``/``$LATTICE_URL``, else this data dir's live head (or HeadNotRunning)."""
    directory = resolve_data_dir(data_dir)
    local = LocalHead.of(directory)
    url = url or os.environ.get("LATTICE_URL") or None
    if url is None:
        if not local.running:
            raise HeadNotRunning(local.why_not())
        url = local.url
    assert url is not None
    return Target(url.rstrip("/"), token, directory, local)


@contextmanager
def head_errors(target: Target) -> Iterator[None]:
    """The SDK's typed errors as one line each: unreachable exits 3, the rest 1; Ctrl-C exits 130."""
    from lattice.errors import AuthenticationError, HeadUnavailableError, LatticeError

    try:
        yield
    except KeyboardInterrupt:  # Ctrl-C while following a run: the run itself goes on
        click.echo("\ninterrupted; a run being followed goes on (lattice runs cancel ID stops it)", err=True)
        sys.exit(130)
    except HeadUnavailableError as exc:
        raise HeadNotRunning(f"no Lattice head answers at {target.url}: {exc.__cause__ or exc}") from exc
    except AuthenticationError as exc:
        raise click.ClickException(f"the head at {target.url} refused the token; pass --token, set LATTICE_TOKEN "
                                   "or --data-dir of that head") from exc
    except LatticeError as exc:
        raise click.ClickException(str(exc)) from exc


def target_options(fn: Any) -> Any:
    """``--url``, ``--token`` and ``--data-dir``, as every command that talks to a head takes them."""
    fn = click.option("--token", default=None, help="The head's token [default: $LATTICE_TOKEN, then the "
                      "data dir's token file].")(fn)
    fn = click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
                      help="Data dir of the local head [default: $LATTICE_HOME or ~/.lattice].")(fn)
    fn = click.option("--url", default=None, help="Head URL [default: $LATTICE_URL, then the live head of "
                      "--data-dir; never a guessed port].")(fn)
    return fn


__all__ = [
    "EXIT_NOT_RUNNING",
    "HeadNotRunning",
    "LocalHead",
    "Target",
    "head_errors",
    "read_json",
    "resolve_data_dir",
    "resolve_target",
    "target_options",
]
