"""Side-by-side measurements (ratios in one run, never absolute times in isolation)."""
