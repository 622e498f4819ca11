"""Fault injection (issue #11): the real daemon killed, stopped, flooded and cut off at seeded moments.

Each case prints its seed; ``MOLTBOT_FAULT_SEED=<seed> pytest tests/faults/...`` replays
the same choices (the moments themselves depend on the machine's timing).
"""
