"""Several machines, the pure part: listen addresses, join tokens, names, key fingerprints.

A join token is one line, `flow-join.<base64url JSON>`, carrying the coordinator's address,
its CURVE public key and the secret key of a fresh admission key pair (docs/cluster.md).
Everything here checks its input totally and says what is wrong in one line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
from typing import Final

import attrs

from daemon.model.descriptor_fields import ID_RE

TOKEN_PREFIX: Final = "flow-join."
MAX_TOKEN_CHARS: Final = 1024
ZAP_DOMAIN: Final = "flow-cluster"
DEFAULT_TOKEN_TTL_S: Final = 3600.0  # an unused token stops admitting after an hour
MAX_TOKEN_TTL_S: Final = 30 * 86400.0
JOIN_TIMEOUT_S: Final = 10.0  # a join waits this long for the coordinator's answer
# the cause a node of a machine that left (said goodbye) ends `lost` with, in its record
_LEFT_TAIL: Final = " left (its daemon stopped, and its nodes)"
_Z85_RE: Final = re.compile(r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")
_BASE64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_ADDRESS_RE: Final = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-*]+):([0-9]{1,5})")


class ClusterConfigError(ValueError):
    """A listen address, token or machine name that cannot be used (one line)."""


@attrs.frozen
class ListenAddress:
    """A coordinator's `tcp://HOST:PORT`; `plain` only on loopback and when asked for."""

    endpoint: str
    host: str
    port: int
    plain: bool = False


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_listen(text: str, *, plain: bool = False) -> ListenAddress:
    """`tcp://ADDR:PORT` to bind; plain TCP (no CURVE) only on loopback, and only if asked."""
    match = _ADDRESS_RE.fullmatch(text.strip())
    if match is None:
        raise ClusterConfigError(f"--listen {text[:80]!r}: expected tcp://ADDRESS:PORT")
    host, port = match.group(1), int(match.group(2))
    if not 0 < port < 65536:
        raise ClusterConfigError(f"--listen {text[:80]!r}: port {port} out of range")
    if plain and not _is_loopback(host):
        raise ClusterConfigError(
            f"--listen {text[:80]!r}: plain TCP (--insecure-loopback) is refused on a "
            "non-loopback address; drop the flag to use CURVE"
        )
    return ListenAddress(endpoint=f"tcp://{host}:{port}", host=host, port=port, plain=plain)


def check_machine_name(name: str) -> str:
    if not ID_RE.fullmatch(name):
        raise ClusterConfigError(
            f"machine name {name[:80]!r}: expected 1 to 64 of A-Z a-z 0-9 _ . - (a letter or "
            "digit first)"
        )
    return name


def is_z85_key(text: object) -> bool:
    return isinstance(text, str) and _Z85_RE.fullmatch(text) is not None


def fingerprint(public_key: str) -> str:
    """A short, stable name of a public key for people: `sha256:` and 16 hex digits."""
    return "sha256:" + hashlib.sha256(public_key.encode()).hexdigest()[:16]


@attrs.frozen
class JoinToken:
    """What a joining machine needs: where, whom to trust, and the admission secret."""

    address: str  # tcp://HOST:PORT of the coordinator
    server_key: str  # the coordinator's public key (z85)
    admission_secret: str  # the secret half of the token's admission key pair (z85)
    plain: bool = False  # the coordinator listens without CURVE (--insecure-loopback)

    def text(self) -> str:
        fields: dict[str, object] = {
            "v": 1, "a": self.address, "k": self.server_key, "s": self.admission_secret
        }
        if self.plain:
            fields["p"] = True
        body = json.dumps(fields, separators=(",", ":")).encode()
        return TOKEN_PREFIX + base64.urlsafe_b64encode(body).decode().rstrip("=")


def parse_token(text: str) -> JoinToken:
    """A token's parts, or ClusterConfigError: `join token: ...` naming what is wrong."""
    text = text.strip()
    if len(text) > MAX_TOKEN_CHARS or not text.startswith(TOKEN_PREFIX):
        raise ClusterConfigError("join token: not a flow join token (flow-join.…)")
    encoded = text[len(TOKEN_PREFIX) :]
    if not _BASE64URL_RE.fullmatch(encoded):
        raise ClusterConfigError("join token: damaged (a character out of base64url, or two "
                                 "lines); copy the one line again")  # fmt: skip
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ClusterConfigError("join token: damaged (not base64 JSON); copy it again") from None
    if not isinstance(body, dict) or body.get("v") != 1 or not (
        {"v", "a", "k", "s"} <= set(body) <= {"v", "a", "k", "s", "p"}
    ):
        raise ClusterConfigError("join token: not version 1 of the format; copy it again")
    address, server_key, secret = body["a"], body["k"], body["s"]
    if not isinstance(address, str) or _ADDRESS_RE.fullmatch(address) is None:
        raise ClusterConfigError("join token: no coordinator address tcp://HOST:PORT")
    if not is_z85_key(server_key) or not is_z85_key(secret):
        raise ClusterConfigError("join token: the keys are not 40-character Z85 keys")
    plain = body.get("p", False)
    if type(plain) is not bool:
        raise ClusterConfigError("join token: damaged (p is not true or false)")
    match = _ADDRESS_RE.fullmatch(address)
    if plain and (match is None or not _is_loopback(match.group(1))):
        raise ClusterConfigError(
            f"join token: plain TCP to {address[:80]} is refused: only a loopback coordinator "
            "may listen without CURVE"
        )
    return JoinToken(address=address, server_key=server_key, admission_secret=secret, plain=plain)


def left_cause(machine: str) -> str:
    """The recorded cause of a node lost because its machine left (`flow down` there)."""
    return f"machine {machine}{_LEFT_TAIL}"


def is_left_cause(line: str) -> bool:
    """Whether a node record's last line is `left_cause`'s."""
    return line.startswith("machine ") and line.endswith(_LEFT_TAIL)
