"""The fault cases' fixtures: the seed their moments come from, and daemons that are cleaned up."""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Env
from tests.faults.harness import Incarnation, processes_of_home

SEED_VARIABLE = "MOLTBOT_FAULT_SEED"


@pytest.fixture
def fault_rng(request: pytest.FixtureRequest) -> random.Random:
    """A fresh seed each run, so CI keeps exploring; a failure's captured output names it."""
    given = os.environ.get(SEED_VARIABLE)
    seed = int(given) if given else random.SystemRandom().randrange(2**32)
    print(f"fault seed {seed}: replay with {SEED_VARIABLE}={seed} pytest '{request.node.nodeid}'")
    return random.Random(seed)


@pytest.fixture
def lives(env: Env) -> Iterator[Callable[[str], Incarnation]]:
    """Starts lives of the daemon; when the case ends (a failure too), nothing it started is left."""
    started: list[Incarnation] = []

    def start(name: str) -> Incarnation:
        started.append(Incarnation(env, name))
        return started[-1]

    yield start
    for life in started:
        if life.process.poll() is None:
            life.process.kill()
            life.process.wait(10)
    for pid in processes_of_home(env):  # what a killed life's runs left behind
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
