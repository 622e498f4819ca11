#!/usr/bin/env python3
"""Process items one by one, checkpointing after each: an interrupted run
(shutdown, `moltbot stop`, a crash) resumes at the next unprocessed item."""

import os
import sys
import time

from moltbot import checkpoint

ITEMS = int(os.environ.get("DEMO_ITEMS", "30"))
DELAY = float(os.environ.get("DEMO_DELAY", "1"))

state = checkpoint.load() or {"next_item": 0}
start = state["next_item"]
if start:
    print(f"resuming from checkpoint at item {start}")
for item in range(start, ITEMS):
    time.sleep(DELAY)
    print(f"processed item {item}", flush=True)
    checkpoint.save({"next_item": item + 1})
checkpoint.clear()
print(f"done: {ITEMS - start} items this run")
sys.exit(0)
