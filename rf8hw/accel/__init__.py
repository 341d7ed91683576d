"""Accelerator estimates: the cycle model, synthesis runs (Yosys + nextpnr), the estimate of a model
on an RF8 array and its reports.  The top layer under the CLI: may import every other layer."""
