"""Wire formats: the daemon protocol, tensor frames, TLS, memfd IPC and transport framing."""
