"""The model and program format: the Akida 1.0 layer family, its v1 rules, the .akp
program file and the input check. May import: akida_rt.errors only."""
