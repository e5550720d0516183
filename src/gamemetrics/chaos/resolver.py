"""A resolver of the run's own: `up` and what it starts run in a mount namespace where a hosts file
and a resolver configuration of the run's folder stand for the machine's, so a host name can stop
resolving for the platform alone (the machine's files are never touched)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

HOSTS = "hosts"
# No name server: a name the hosts file lacks fails at once instead of waiting on the network.
RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
# Bind both files in place, then run the command; `unshare --mount` makes the mounts the command's alone.
_BIND = 'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'


def hosts_text(name: str | None) -> str:
    """The run's hosts file: loopback names, and `name` on 127.0.0.1 while it resolves."""
    lines = ["127.0.0.1 localhost", "::1 localhost"]
    if name:
        lines.append(f"127.0.0.1 {name}")
    return "\n".join(lines) + "\n"


def namespace(folder: Path, name: str) -> list[str]:
    """The command prefix that runs a command in the run's namespace, with `name` resolving."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        raise RuntimeError("a resolver of the run's own needs `unshare` (util-linux) and root, for a mount namespace")
    hosts, resolv = folder / HOSTS, folder / "resolv.conf"
    hosts.write_text(hosts_text(name))
    resolv.write_text(RESOLV_CONF)
    return [unshare, "--mount", "--propagation", "private", "sh", "-c", _BIND, str(hosts), str(resolv)]


def set_resolving(folder: Path, name: str, resolving: bool) -> None:
    """Make `name` resolve or not inside the run's namespace: the file is rewritten in place, as the
    namespace's /etc/hosts is bound to this very file."""
    with (folder / HOSTS).open("r+") as hosts:
        hosts.truncate(0)
        hosts.write(hosts_text(name if resolving else None))
