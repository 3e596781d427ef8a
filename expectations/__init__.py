"""Data contracts and checks: pandera contracts for raw files, GX suites for marts."""
