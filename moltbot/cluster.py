"""This daemon as a node: its session, and on PostgreSQL its lease, its fence and the other nodes'.

Every start opens a session (store/sessions.py) under this node's name. On PostgreSQL a thread of
its own ("lease") does, every ``lease_seconds / 6``:

- renew the lease, on a connection of its own, as one statement that takes no writer lock (the
  server's clock decides; a renewal never waits behind another node's transaction);
- fence: when no renewal got through for half the lease, kill every run's process group itself
  (not through the loop, which may be stuck in a query to the same unreachable server) and claim
  nothing more. The lease is still running then, so no other node has re-run anything yet: a
  re-run can never overlap the original. When the renewal comes back in time, claiming resumes;
  when it finds the lease lost (the node was settled meanwhile), the daemon exits with 75 and
  systemd starts it again as a new session;
- (thread "listen") wake the loop when another node asks for something (LISTEN/NOTIFY), and hold
  the leader lock (an advisory lock of its connection) when no other node does: the Discord
  Tasks Channel is read and edited by the leader alone (three nodes would race on the same edits
  and triple the API calls; the sync reconciles the whole channel each pass, so a new leader loses
  nothing). Signal's websocket runs on every node (a gateway drops what arrives while no socket is
  connected, and receiving is idempotent: the inbox key); heartbeats too (each node's own URL).
- settle the sessions whose lease ran out: their runs are interrupted and re-run here per their
  ``missed`` policy (recovery.py), within a sixth of the lease of its end.

Processes die with their daemon: the fence keeper (fence_keeper.py) kills the runs' groups when the
daemon dies without saying goodbye (kill -9), as systemd's cgroup does under the unit.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from moltbot import store
from moltbot.fencing import ProcessGroups
from moltbot.recovery import settle_lost_session
from moltbot.store.abandoned import alive
from moltbot.threads import Supervised

if TYPE_CHECKING:
    from moltbot.config.spec import TaskSpec
    from moltbot.core.api import Core
    from moltbot.runner import Supervisor

__all__ = ["CLAIM_AHEAD_ON_POSTGRESQL", "EXIT_LEASE_LOST", "Membership", "node_name_taken"]

log = logging.getLogger(__name__)
EXIT_LEASE_LOST = 75  # EX_TEMPFAIL: systemd's Restart= starts a new session
# A claim's commit crosses the network and waits for the server's fsync (milliseconds, not the
# microseconds of SQLite's): claimed this much ahead, a run is recorded before its instant comes.
CLAIM_AHEAD_ON_POSTGRESQL = timedelta(milliseconds=20)


def node_name_taken(core: Core) -> str | None:
    """PostgreSQL: why this daemon may not start under its node name: a live session (its lease
    running) has the name on another host, or on this host in a daemon still alive (two homes). Two
    daemons under one name would settle each other's runs as their own crashed ones."""
    from moltbot.config.database import node_name

    if not store.is_postgresql():
        return None
    node, host = core.settings.node or node_name(core.home), socket.gethostname()
    for session in store.live_sessions():
        if session.node == node and (
            session.host != host or (session.pid != os.getpid() and alive(session.pid))
        ):
            return (
                f"node name {node!r} is in use by a running daemon on {session.host} (pid {session.pid}): "
                "give each node its own [daemon] node in moltbot.toml"
            )
    return None


class Membership:
    def __init__(
        self,
        core: Core,
        wake: Callable[[], None],
        specs: Callable[[], list[TaskSpec]],
    ) -> None:
        from moltbot.config.database import node_name

        self.core = core
        self.node = core.settings.node or node_name(core.home)
        self.lease = core.settings.lease_seconds
        self.groups = ProcessGroups()
        self._wake = wake
        self._specs = specs
        self.session: int | None = None
        self.standby = False  # its tasks.json differs from the database's: it runs nothing (loudly)
        self.fenced = False  # no renewal for half the lease: runs killed, nothing claimed
        self.leader = False  # holds the leader lock (the Discord channel's sync runs here only)
        self.lost = threading.Event()  # the lease was lost: the daemon exits (EXIT_LEASE_LOST)
        self._renewed = 0.0  # monotonic time a successful renewal was sent
        self._thread = Supervised("lease", self._one_pass, core.health)
        # Apart from the renewals: a renewal to a server cut off blocks until TCP gives up (seconds).
        self._fence = Supervised("fence", self._watch, core.health)
        self._listener = Supervised("listen", self._listen, core.health)

    @property
    def clustered(self) -> bool:
        return store.is_postgresql()

    def attach(self, supervisor: Supervisor) -> None:
        """PostgreSQL: the loop's runs are fenced from here, and the core asks here whether it leads."""
        if self.clustered:
            supervisor.groups = self.groups
            self.core.leads = self.leads

    @property
    def claiming(self) -> bool:
        """Whether this node may claim and start runs: reachable, and with the database's tasks."""
        return not (self.fenced or self.standby)

    def start(self) -> None:
        store.use_node(self.node)
        started = time.monotonic()
        self.session = store.open_session(
            self.node, socket.gethostname(), os.getpid(), self.core.clock.now(), self.lease
        )
        if not self.clustered:
            return
        self._renewed = started
        self.groups.start_keeper()
        log.info("node %s: session %d, lease %.0f s", self.node, self.session, self.lease)

    def start_thread(self) -> None:
        """After recovery: the other nodes' lost sessions are settled from now on."""
        if self.clustered:
            self._thread.start()
            self._fence.start()
            self._listener.start()

    def stop(self, how: str = "stopped") -> None:
        self._listener.stop(timeout=1)
        self._fence.stop()
        self._thread.stop(timeout=self.lease / 6 + 1)
        if self.session is not None and not self.lost.is_set():
            try:
                store.end_session(self.session, self.core.clock.now(), how)
            except Exception as exc:  # the database is gone: the lease runs out instead
                log.warning("could not end session %d: %s", self.session, exc)
        self.groups.close()

    def _one_pass(self) -> None:
        assert self.session is not None
        interval = self.lease / 6
        sent = time.monotonic()
        try:
            renewed = store.renew_lease(self.session, self.lease)
        except Exception as exc:
            if not store.is_locked_error(exc):
                raise
            log.warning("node %s: lease not renewed (%s)", self.node, exc)
        else:
            if not renewed:
                self._lose()
                return
            self._renewed = sent
            if self.fenced:
                log.warning("node %s: the database is back within the lease: claiming again", self.node)
                self.fenced = self.groups.fencing = False
                self._wake()
        # Nothing else on this thread: a renewal must never wait behind other work or its errors.
        self._thread.stopping.wait(max(0.0, interval - (time.monotonic() - sent)))

    def _watch(self) -> None:
        silent = time.monotonic() - self._renewed
        if silent > self.lease / 2 and not self.fenced:
            self.fenced = True  # first: the loop claims nothing from now on
            killed = self.groups.kill_all()
            log.critical(
                "node %s: no lease renewal for %.1f s: %d runs killed, claiming nothing until it is back",
                self.node, silent, killed,
            )  # fmt: skip
        self._fence.stopping.wait(self.lease / 12)

    def _check_definitions(self) -> None:
        """A node whose tasks.json differs from the one the database has (another node synced its
        own) stands aside rather than run other definitions under the same names: said loudly,
        once per difference (log, an alert; ``doctor`` shows it), until they agree again."""
        from moltbot.core.registration import definitions_differ, definitions_hash

        synced_by = definitions_differ(self._specs())
        if synced_by is None:
            if self.standby:
                log.warning("node %s: its tasks.json agrees with the database's again", self.node)
                self.standby = False
                self._wake()
            return
        if not self.standby:
            self.standby = True
            key, mine = f"definitions:{self.node}", definitions_hash(self._specs())
            text = (
                f"⚠ node {self.node}: its tasks.json differs from the one {synced_by} wrote to the database; "
                f"it runs nothing until they agree (deploy the same tasks.json and scripts to every node, "
                "then moltbot reload)"
            )
            log.critical("%s", text)
            if store.get_meta(key) != mine:  # once per difference, not at every restart
                self.core.alert(text)
                store.set_meta(key, mine)

    def _listen(self) -> None:
        """Wake-ups from other nodes (a CLI's ``run`` on another host, a chat command another node
        took): LISTEN on a connection of its own, sleeping in select until one comes."""
        try:
            store.listen((store.REQUESTS_CHANNEL,))
            self._wake()  # what was notified while this connection was not listening
            while not self._listener.stopping.is_set():
                if not self.leader and store.try_leadership():
                    self.leader = True
                    log.info("node %s leads: the Discord Tasks Channel is synced from here", self.node)
                if not self.fenced:
                    self._housekeep()
                if store.notifications(self.lease / 6):
                    self._wake()
        finally:
            self.leader = False  # the lock went with the connection (or goes with it now)

    def _housekeep(self) -> None:
        """Every sixth of a lease: the definitions compared, other nodes' lost sessions settled. An
        error here is logged and tried again next time; it never holds up a renewal or a wake-up."""
        for step in (self._check_definitions, self._settle_lost_sessions):
            try:
                step()
            except Exception:
                log.exception(
                    "node %s: %s failed; trying again in %.1f s", self.node, step.__name__, self.lease / 6
                )

    def leads(self) -> bool:
        """The work one node does for all (Discord's sync): the leader's, while it is not cut off."""
        return not self.clustered or (self.leader and not self.fenced)

    def _lose(self) -> None:
        killed = self.groups.kill_all()
        log.critical(
            "node %s: the lease of session %s was lost (another node settled it): %d runs killed; exiting %d "
            "to start again as a new session", self.node, self.session, killed, EXIT_LEASE_LOST,
        )  # fmt: skip
        self.lost.set()
        self._thread.stopping.set()
        self._wake()

    def _settle_lost_sessions(self) -> None:
        for session in store.expired_sessions():
            if session.id != self.session:
                specs = {spec.task_id: spec for spec in self._specs()}
                settle_lost_session(session.id, session.node, self.node, specs, self.core.clock.now())
                self._wake()
