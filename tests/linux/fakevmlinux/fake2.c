/* fake2.c - the second static process_one_work of the fake vmlinux. */
__attribute__((noinline, used)) static void process_one_work(void *a) { asm volatile("" :: "r"(a)); }
void process_other(void) { process_one_work(0); }
