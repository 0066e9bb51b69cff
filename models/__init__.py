"""codec.models (see the README's Architecture section)."""
