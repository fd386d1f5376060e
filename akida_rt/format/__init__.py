"""The model and program format: the Akida 1.0 layer family, its v1 rules and the .akp program file."""
