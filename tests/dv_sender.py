"""A DV network stream on loopback for the live-source tests: dv-processing's
NetworkWriter serving the events of a .npy file, paced by their timestamps.

    python -m tests.dv_sender PORT EVENTS.npy [--pace] [--stall-after N] [--wait-clients S]

Waits for a client, sends packets of 500 events, then (--stall-after) keeps the connection
open without sending, or exits. Exits with os._exit: the writer's destructor waits for
its clients forever (measured with dv-processing 2.0.4)."""

from __future__ import annotations

import argparse
import os
import sys
import time

import dv_processing as dv
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("events")
    ap.add_argument("--pace", action="store_true")
    ap.add_argument("--stall-after", type=int, default=-1)
    ap.add_argument("--packet", type=int, default=500)
    args = ap.parse_args()
    ev = np.load(args.events)
    stream = dv.io.Stream.EventStream(0, "events", "akida_rt-test", (34, 34))
    writer = dv.io.NetworkWriter("127.0.0.1", args.port, stream)
    print("listening", flush=True)
    deadline = time.monotonic() + 10
    while writer.getClientCount() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    start, t0 = time.monotonic(), int(ev["t"][0]) if len(ev) else 0
    for k in range(0, len(ev), args.packet):
        if 0 <= args.stall_after <= k:
            time.sleep(60)
        part = ev[k : k + args.packet]
        if args.pace:
            wait = start + (int(part["t"][-1]) - t0) / 1e6 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        store = dv.EventStore()
        for t, x, y, p in part[["t", "x", "y", "p"]].tolist():
            store.push_back(t, x, y, bool(p))
        writer.writeEvents(store)
    while writer.getQueuedPacketCount():
        time.sleep(0.01)
    time.sleep(0.3)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
