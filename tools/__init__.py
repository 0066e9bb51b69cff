"""codec.tools: evaluation, BD-rate, reports and benchmarks (builds on ``codec``)."""
