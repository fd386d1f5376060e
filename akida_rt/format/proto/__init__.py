"""Generated protobuf code of the program file (program.proto)."""
