/* layout.h - the structures of the fake vmlinux (tests/e2e/linux_probe.sh):
 * the members krewind probe linux looks for, some inside anonymous structs
 * and unions as in real kernels, at offsets no real build has. */
struct list_head {
	struct list_head *next, *prev;
};

struct task_struct {
	unsigned int __state;
	void *stack;
	struct {
		long pad[5];
		int pid;
		int tgid;
	};
	union {
		struct list_head tasks;
		char pad2[40];
	};
	char comm[16];
	long tail;
};

struct pcpu_hot {
	union {
		struct {
			long pad;
			struct task_struct *current_task;
			int preempt_count;
			int cpu_number;
		};
		unsigned char pad3[64];
	};
};
