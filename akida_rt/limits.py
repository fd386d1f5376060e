"""Memory limits for the child processes that run third-party parsers on untrusted files
(BrainChip's akida on `.fbz` models)."""

from __future__ import annotations

import os
import resource

AKIDA_CHILD_BYTES = 2 << 30  # address space an akida child may add to what it has mapped


def mapped_bytes() -> int:
    """This process's address space now (the VSZ of /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def cap_address_space(extra_bytes: int) -> int:
    """Limit this process (a child, after its imports) to what it has mapped now plus
    `extra_bytes` (RLIMIT_AS): a parser that runs away then fails an allocation instead
    of taking the machine's memory. Returns the limit set."""
    limit = mapped_bytes() + extra_bytes
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit
