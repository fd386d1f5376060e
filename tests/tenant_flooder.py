"""A client process that keeps `depth` one-frame requests in flight to akidad until it is
terminated (or `seconds` pass): the load of one pod's worker in the fairness tests.

    python -m tests.tenant_flooder SOCKET SECONDS DEPTH NAME
Prints one line when its model is loaded ("ready"), then, at the end, a JSON summary.
"""

from __future__ import annotations

import json
import signal
import sys
import time

from akida_rt.client.client import Client
from akida_rt.model import zoo
from tests.daemon_harness import random_input


def main() -> None:
    socket, seconds, depth, name = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    model = zoo.digits_cnn(seed=0)
    x = random_input(model, 1, 7)
    frames = errors = 0
    with Client(socket, name=name, timeout=60) as client:
        remote = client.load(model)
        print("ready", flush=True)
        end = time.monotonic() + seconds
        while not stop and time.monotonic() < end:
            while client.in_flight < depth:
                client.submit(remote, x)
            for answer in client.collect(wait=0.5):
                frames += answer.error is None
                errors += answer.error is not None
    print(json.dumps({"name": name, "frames": frames, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
