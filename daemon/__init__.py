"""akidad, the runtime daemon: owns the devices, shares them between client processes over
a Unix socket, batches chain-loaded work and keeps state. Installed as akida_rt.daemon.

Parts (see docs/daemon.md): app (composition root), controller, server, devices,
scheduler, store, metrics, systemd.
"""
