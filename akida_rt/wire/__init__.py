"""Wire formats: the daemon protocol, tensor frames, error statuses, TLS, memfd IPC and
transport framing. May import: akida_rt.errors only (no model, engine or mapper)."""
