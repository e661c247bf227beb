/*
 * serial.c: the COM1 console (polled 16550 at 0x3F8) and the power-off port.
 *
 * DbgPrint formats into a buffer first and writes the line with interrupts
 * disabled, so lines from threads and interrupt handlers never interleave on
 * this single processor.
 */
#include "ke.h"

#define COM1            0x3F8
#define DEBUG_EXIT_PORT 0xF4

void KdInitSerial(void)
{
	__outbyte(COM1 + 1, 0x00); /* no UART interrupts: we poll */
	__outbyte(COM1 + 3, 0x80); /* DLAB */
	__outbyte(COM1 + 0, 0x01); /* 115200 baud */
	__outbyte(COM1 + 1, 0x00);
	__outbyte(COM1 + 3, 0x03); /* 8N1 */
	__outbyte(COM1 + 2, 0xC7); /* FIFO on */
	__outbyte(COM1 + 4, 0x03);
}

static void KdPutChar(char c)
{
	while (!(__inbyte(COM1 + 5) & 0x20))
		;
	__outbyte(COM1, (UCHAR)c);
}

struct KdBuffer {
	char Text[256];
	size_t Length;
};

static void put(struct KdBuffer *b, char c)
{
	if (b->Length < sizeof(b->Text))
		b->Text[b->Length++] = c;
}

static void putnum(struct KdBuffer *b, ULONG64 v, unsigned base, int width, char pad, BOOLEAN negative)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (negative)
		tmp[n++] = '-';
	while (width-- > n)
		put(b, pad);
	while (n)
		put(b, tmp[--n]);
}

static void format(struct KdBuffer *b, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(b, *fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, longs = 0;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l')
			longs++, fmt++;
		switch (*fmt) {
		case 'd': {
			LONGLONG v = longs ? va_arg(ap, LONGLONG) : va_arg(ap, int);
			putnum(b, v < 0 ? -(ULONG64)v : (ULONG64)v, 10, width, pad, v < 0);
			break;
		}
		case 'u':
			putnum(b, longs ? va_arg(ap, ULONG64) : va_arg(ap, unsigned), 10, width, pad, FALSE);
			break;
		case 'x':
			putnum(b, longs ? va_arg(ap, ULONG64) : va_arg(ap, unsigned), 16, width, pad, FALSE);
			break;
		case 'p':
			put(b, '0');
			put(b, 'x');
			putnum(b, (ULONG64)va_arg(ap, void *), 16, 16, '0', FALSE);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			for (s = s ? s : "(null)"; *s; s++)
				put(b, *s);
			break;
		}
		case 'c':
			put(b, (char)va_arg(ap, int));
			break;
		case '%':
			put(b, '%');
			break;
		default:
			put(b, '?');
			break;
		}
	}
}

void KdVPrint(const char *fmt, va_list ap)
{
	struct KdBuffer b;
	b.Length = 0;
	format(&b, fmt, ap);
	ULONG64 flags = KiDisableInterrupts();
	for (size_t i = 0; i < b.Length; i++)
		KdPutChar(b.Text[i]);
	KiRestoreInterrupts(flags);
}

void DbgPrint(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	KdVPrint(fmt, ap);
	va_end(ap);
}

/* isa-debug-exit: QEMU exits with status (code << 1) | 1. If the device is
 * missing, halt with interrupts off: the caller's timeout catches it. */
void KiPowerOff(UCHAR code)
{
	_disable();
	__outbyte(DEBUG_EXIT_PORT, code);
	for (;;)
		__asm__ volatile("hlt");
}
