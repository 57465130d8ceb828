"""Per-pixel (aleatoric) uncertainty math that heads, metrics and callbacks share (plain torch)."""
