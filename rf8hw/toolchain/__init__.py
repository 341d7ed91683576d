"""The external HDL tools: locating and running Verilator, Icarus, Yosys and nextpnr, their versions,
and the content-addressed cache of generated RTL, simulator builds and synthesis results.
Imports no torch; knows nothing of models."""
