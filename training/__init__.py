"""codec.training (see the README's Architecture section)."""
