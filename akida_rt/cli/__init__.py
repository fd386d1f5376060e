"""The `akida` command line: one module per group of subcommands."""
