"""Generated protobuf code of the daemon protocol (daemon.proto)."""
