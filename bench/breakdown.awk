# breakdown.awk - where a recording's time goes, from the plugin's meta
# tracer_counters (tracer/plugin.c, docs/tracer.md "Cost"); used by
# bench/record_overhead.sh and bench/linux_record.sh.
#
#   awk -f bench/breakdown.awk -v c="$counters" -v ms=WALL_MS -v extra=MS
#
# c: the counters (key=value ...) of one run with the plugin; ms: that run's
# wall time; extra: the median wall time with the plugin minus the median
# without (what the plugin cost). Prints indented lines: what the plugin did
# per second and per event, then the cost by part. Times in callbacks and
# under the lock are wall clock (sampled on one callback in 16) and so
# include time the host took the thread away; the writer's is CPU time, on
# its own thread, which costs wall time only when no core is free for it.
BEGIN {
	n = split(c, kv, " ")
	for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
	if (!("callbacks" in v)) { print "        (no tracer_counters: an older plugin)"; exit }
	s = ms / 1000
	ev = v["events"] ? v["events"] : 1
	cb = v["callbacks"] ? v["callbacks"] : 1
	printf "        per second: %.0f callbacks (trap %.0f, entry %.0f, ret %.0f, iret %.0f), %.0f store callbacks (%.0f EOIs)\n",
		v["callbacks"] / s, v["trap"] / s, v["entry"] / s, v["ret"] / s, v["iret"] / s, v["store"] / s, v["store_eoi"] / s
	printf "        per event: %.1f register reads, %.1f memory reads; %d instrumented sites; %d events dropped\n",
		v["reg_reads"] / ev, v["mem_reads"] / ev, v["sites"], v["dropped"]
	if (!("setup_ms" in v)) exit
	inside = v["setup_ms"] + v["callback_ms"] + v["store_ms"]
	printf "        cost: setup %d ms; callbacks %d ms (%.1f%% of the run, %.2f us each); store callbacks %d ms; plugin lock held %d ms (%d holds, translating blocks included)\n",
		v["setup_ms"], v["callback_ms"], 100 * v["callback_ms"] / (ms ? ms : 1), 1000 * v["callback_ms"] / cb,
		v["store_ms"], v["lock_ms"], v["locks"]
	printf "              writer thread %d ms CPU (%.2f us/event); translation flushes %d; ",
		v["writer_cpu_ms"], 1000 * v["writer_cpu_ms"] / ev, v["resets"]
	if (extra > inside)
		printf "rest of the %d ms difference (the inline count per block, translating instrumented blocks, noise) %d ms\n",
			extra, extra - inside
	else
		printf "the %d ms difference is within the noise (less than the parts above)\n", extra
}
