"""Rendering run folders into reports, comparing runs, and the committed baselines and example report."""
