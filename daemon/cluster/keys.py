"""A machine's long-term CURVE key pair and a member's coordinator, under FLOW_HOME/cluster/.

The folder is 0700 and every file 0600, written whole (atomic replace): a secret key is
never readable by another user, not even for a moment. The key pair is made once, on first
use, and kept: the coordinator knows a member by it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final

import attrs
import zmq

from daemon.model.cluster import ClusterConfigError, check_machine_name, is_z85_key
from node_sdk import private

CLUSTER_DIR: Final = "cluster"
KEYS_FILE: Final = "keys.json"
MEMBERSHIP_FILE: Final = "member.json"
SECRET_FILE: Final = "machine.key"  # the secret key alone, read by this machine's tcp:// nodes
MAX_FILE_BYTES: Final = 4096


@attrs.frozen
class KeyPair:
    public: str  # z85
    secret: str = attrs.field(repr=False)  # z85; never logged


@attrs.frozen
class Membership:
    """What a member keeps to rejoin without the token: its name and whom it trusts."""

    name: str
    coordinator_address: str
    coordinator_key: str
    plain: bool = False  # the coordinator listens without CURVE (--insecure-loopback)


def cluster_dir(home: Path) -> Path:
    folder = home / CLUSTER_DIR
    try:
        private.ensure_private_dir(folder, "cluster key folder")
    except private.NotPrivate as exc:
        raise ClusterConfigError(str(exc)) from None
    return folder


def _write_private(path: Path, data: dict[str, str | bool] | str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(data if isinstance(data, str) else json.dumps(data))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def _read_object(path: Path) -> dict[str, object] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClusterConfigError(f"{path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise ClusterConfigError(f"{path}: must be owned by this user with mode 0600")
        raw = source.read(MAX_FILE_BYTES + 1)
    try:
        data = json.loads(raw) if len(raw) <= MAX_FILE_BYTES else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ClusterConfigError(f"{path}: damaged (not a small JSON object); remove it")
    return data


def machine_keys(home: Path) -> KeyPair:
    """This machine's key pair, made on first use (`zmq.curve_keypair`) and kept."""
    path = cluster_dir(home) / KEYS_FILE
    data = _read_object(path)
    if data is None:
        new_public, new_secret = zmq.curve_keypair()
        pair = KeyPair(public=new_public.decode(), secret=new_secret.decode())
        _write_private(path, {"public": pair.public, "secret": pair.secret})
        return pair
    public, secret = data.get("public"), data.get("secret")
    if not is_z85_key(public) or not is_z85_key(secret):
        raise ClusterConfigError(f"{path}: no public and secret Z85 keys; remove it")
    return KeyPair(public=str(public), secret=str(secret))  # is_z85_key: both are str


def read_membership(home: Path) -> Membership | None:
    """The coordinator this home joined, if it joined one."""
    path = home / CLUSTER_DIR / MEMBERSHIP_FILE
    if not path.parent.exists():
        return None
    data = _read_object(path)
    if data is None:
        return None
    name, address, key = data.get("name"), data.get("address"), data.get("key")
    plain = data.get("plain", False)
    if (not isinstance(name, str) or not isinstance(address, str) or not is_z85_key(key)
            or type(plain) is not bool):  # fmt: skip
        raise ClusterConfigError(f"{path}: damaged; remove it and join again with a token")
    return Membership(name=check_machine_name(name), coordinator_address=address,
                      coordinator_key=str(key), plain=plain)  # fmt: skip


def write_membership(home: Path, membership: Membership) -> None:
    _write_private(
        cluster_dir(home) / MEMBERSHIP_FILE,
        {
            "name": membership.name,
            "address": membership.coordinator_address,
            "key": membership.coordinator_key,
            "plain": membership.plain,
        },
    )


def forget_membership(home: Path) -> None:
    """The coordinator removed this machine: it must join again with a new token."""
    (home / CLUSTER_DIR / MEMBERSHIP_FILE).unlink(missing_ok=True)


def secret_key_file(home: Path, keys: KeyPair) -> Path:
    """The file a node's `tcp.secret_file` names (docs/cluster-data.md): this machine's
    secret key alone, 0600, written (whole) when it is missing or holds another key."""
    path = cluster_dir(home) / SECRET_FILE
    try:
        current = path.read_text(encoding="ascii").strip() if path.is_file() else ""
    except (OSError, UnicodeDecodeError):
        current = ""
    if current != keys.secret:
        _write_private(path, keys.secret + "\n")
    return path
