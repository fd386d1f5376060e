"""The AKD1000's host interface as data and codecs: memory map, registers, DMA descriptors,
events, config-DMA packets and program binaries (imports only numpy, flatbuffers and
akida_rt.errors)."""
