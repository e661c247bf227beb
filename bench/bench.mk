# Benchmarks: bench/*.sh, each printing ratios measured side by side in one run.
BENCHES += $(filter-out bench/run.sh,$(sort $(wildcard bench/*.sh)))
