"""PyTorch front end: GG statistics and init, coded rate, BackSlash, DeepShape, quantization,
bit-exact RF8 layers, training and checkpoints.  Imports :mod:`rf8hw.format` and the array
configuration of :mod:`rf8hw.hdl.config`; nothing above it."""
