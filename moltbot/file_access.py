"""What another user may do to a file: its mode bits and its POSIX ACL, as the kernel decides.

The daemon asks this of the task user before it starts (``task_users.py``) and cannot simply ask the
kernel (``access(2)`` answers for the caller). Mode bits alone are not enough: an owner who ran
``setfacl -m u:moltbot-task:rwx config`` has given the task user the configuration whatever
``ls -l`` shows. The ACL is read from its extended attribute (``system.posix_acl_access``, the
kernel's own format: a version, then (tag, permissions, id) entries) and checked by the POSIX.1e
algorithm (acl(5), "Access check algorithm"). Read-only mounts and security modules are not seen:
they only take permissions away.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from pathlib import Path
from typing import NamedTuple

__all__ = ["READ", "SEARCH", "WRITE", "Person", "may"]

READ, WRITE, SEARCH = 4, 2, 1  # as in an ACL entry and a mode's triplets (SEARCH: x on a folder)

_ACL_XATTR = "system.posix_acl_access"
_VERSION = 2
_HEADER, _ENTRY = struct.Struct("<I"), struct.Struct("<HHI")
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_MAX_ACL_BYTES = 64 * 1024  # the kernel's own limit on an xattr's value


class Person(NamedTuple):
    uid: int
    gids: frozenset[int]  # primary and supplementary groups


def may(path: Path, person: Person, wanted: int) -> bool:
    """Whether ``person`` has every permission in ``wanted`` on ``path`` (links followed)."""
    if person.uid == 0:
        return True  # root: read and write anything (search and execute need one x bit; not asked here)
    info = path.stat()
    entries = _acl_entries(path)
    if entries is None or not info.st_mode & stat.S_IRWXG:
        # With an ACL the mode's group bits are its mask; Linux skips an ACL whose mask is empty and
        # goes by the mode alone (named users then get other's permissions, not none).
        return _by_mode(info, person) & wanted == wanted
    return _by_acl(info, entries, person, wanted)


def _by_mode(info: os.stat_result, person: Person) -> int:
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == person.uid:
        return (mode >> 6) & 7
    if info.st_gid in person.gids:
        return (mode >> 3) & 7
    return mode & 7


def _acl_entries(path: Path) -> list[tuple[int, int, int]] | None:
    """The ACL's entries, or None when the file has none beyond its mode (or the filesystem none)."""
    try:
        raw = os.getxattr(path, _ACL_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise
    if len(raw) > _MAX_ACL_BYTES or len(raw) < _HEADER.size or (len(raw) - _HEADER.size) % _ENTRY.size:
        raise OSError(errno.EINVAL, f"{path}: an ACL of {len(raw)} bytes")
    (version,) = _HEADER.unpack_from(raw)
    if version != _VERSION:
        raise OSError(errno.EINVAL, f"{path}: an ACL of version {version}")
    return [_ENTRY.unpack_from(raw, offset) for offset in range(_HEADER.size, len(raw), _ENTRY.size)]


def _by_acl(info: os.stat_result, entries: list[tuple[int, int, int]], person: Person, wanted: int) -> bool:
    """acl(5) as Linux checks it: the owner's entry; else a named user's (masked); else, if a group
    entry matches, whether one matching entry holds all of ``wanted`` (masked); else other's."""
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == person.uid:
        return (mode >> 6) & wanted == wanted
    mask = next((perms for tag, perms, _ in entries if tag == _MASK), 7)
    for tag, perms, uid in entries:
        if tag == _USER and uid == person.uid:
            return perms & mask & wanted == wanted
    matched = False
    for tag, perms, gid in entries:
        if (tag == _GROUP_OBJ and info.st_gid in person.gids) or (tag == _GROUP and gid in person.gids):
            matched = True
            if perms & wanted == wanted:
                return mask & wanted == wanted
    return not matched and mode & wanted == wanted
