"""The `akida` command line: one module per group of subcommands. May import anything
(a composition root), mostly lazily."""
