"""The daemon's view of what the task user may do to a file (``moltbot/file_access.py``: mode bits and
POSIX ACLs) agrees with the kernel's, asked as that user: an ACL must not hand the task user the
configuration behind the daemon's back (issue #12; the attack itself: test_task_user_runs.py)."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

from moltbot.file_access import READ, SEARCH, WRITE, Person, may
from tests.posix_acl import GROUP, USER, set_acl
from tests.users import Users, users

__all__ = ["users"]

ASK_THE_KERNEL = (
    "import json, os, sys\n"
    "paths = json.loads(sys.argv[1])\n"
    "print(json.dumps([[os.access(p, m) for m in (os.R_OK, os.W_OK, os.X_OK)] for p in paths]))\n"
)


def test_mode_bits_and_acls_are_read_as_the_kernel_reads_them(users: Users) -> None:
    task, other = users.task, users.other
    folder = Path("/var/tmp") / f"moltbot-acl-{os.getpid()}"
    folder.mkdir(mode=0o755)
    try:
        chance = random.Random(12)
        paths = []
        for index in range(600):  # random owners, groups, modes and ACLs (masks empty or not)
            path = folder / f"f{index}"
            path.write_text("")
            owner = chance.choice([0, task.uid, other.uid])
            group = chance.choice([0, task.gid, other.gid])
            os.chown(path, owner, group)
            path.chmod(chance.randrange(0o1000))
            if chance.random() < 0.7:
                candidates = [(USER, task.uid), (USER, other.uid), (GROUP, task.gid), (GROUP, other.gid)]
                named = [(tag, chance.randrange(8), id_) for tag, id_ in candidates if chance.random() < 0.5]
                mask = chance.choice([None, chance.randrange(8)])
                set_acl(path, named, mask)
            paths.append(str(path))
        kernel = subprocess.run(
            [*task.setpriv(), str(users.python), "-c", ASK_THE_KERNEL, json.dumps(paths)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        person = Person(task.uid, frozenset(os.getgrouplist(task.name, task.gid)))
        ours = [[may(Path(path), person, wanted) for wanted in (READ, WRITE, SEARCH)] for path in paths]
        disagreements = [
            (path, oct(Path(path).stat().st_mode), answer, theirs)
            for path, answer, theirs in zip(paths, ours, json.loads(kernel), strict=True)
            if answer != theirs
        ]
        assert not disagreements, disagreements[:5]
        assert sum(answer[1] for answer in ours) > 60  # the cases cover writable files too
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=True)
