"""POSIX ACLs written as the kernel stores them (``system.posix_acl_access``), with no setfacl: the
version, then (tag, permissions, id) entries, tags in ascending order as the kernel requires."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

__all__ = ["GROUP", "GROUP_OBJ", "MASK", "OTHER", "USER", "USER_OBJ", "grant_by_acl", "set_acl"]

USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_NO_ID = 0xFFFFFFFF


def set_acl(path: Path, named: list[tuple[int, int, int]], mask: int | None = None) -> None:
    """``path``'s ACL: its mode's owner, group and other entries, the ``named`` (tag, permissions, id)
    entries, and a mask (all the named entries' permissions unless given); the kernel then shows the
    mask as the mode's group bits."""
    mode = stat.S_IMODE(path.stat().st_mode)
    owner, group, other = (mode >> 6) & 7, (mode >> 3) & 7, mode & 7
    if mask is None:
        mask = group
        for _, perms, _ in named:
            mask |= perms
    entries = [
        (USER_OBJ, owner, _NO_ID),
        (GROUP_OBJ, group, _NO_ID),
        (MASK, mask, _NO_ID),
        (OTHER, other, _NO_ID),
    ]
    entries += named
    entries.sort(key=lambda entry: (entry[0], entry[2]))
    raw = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)
    os.setxattr(path, "system.posix_acl_access", raw)


def grant_by_acl(path: Path, uid: int, perms: int) -> None:
    """``setfacl -m u:UID:PERMS path``."""
    set_acl(path, [(USER, perms, uid)])
