# Benchmarks: bench/*.sh, each printing ratios measured side by side in one run.
BENCHES += $(sort $(wildcard bench/*.sh))
