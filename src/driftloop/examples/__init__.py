"""Example projects built from real public data (``driftloop[demo]``)."""
