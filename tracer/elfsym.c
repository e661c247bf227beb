/*
 * elfsym.c - function and object symbols of a kernel ELF, its code labels
 * (untyped symbols in executable sections: assembly entry points), and its
 * build-id.
 *
 * The plugin resolves probe symbols with it and copies the symbols into the
 * trace so readers can symbolize; the CLI uses it to validate a probe file.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tracer/tracer.h"

struct elfsym_table {
	char *path;
	char build_id[2 * 64 + 1];
	struct elfsym *syms; /* sorted by address */
	size_t n;
	char *names; /* all names, NUL-separated */
};

static int fail(char **err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		if (vasprintf(err, fmt, ap) < 0)
			*err = NULL;
		va_end(ap);
	}
	return code;
}

static int by_addr(const void *a, const void *b)
{
	const struct elfsym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Reads the NT_GNU_BUILD_ID note of any SHT_NOTE section into t->build_id. */
static void read_build_id(Elf *e, struct elfsym_table *t)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(e, scn)) != NULL) {
		Elf_Data *d;
		GElf_Nhdr nh;
		size_t off = 0, noff, doff;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		d = elf_getdata(scn, NULL);
		while (d && (off = gelf_getnote(d, off, &nh, &noff, &doff)) > 0) {
			const unsigned char *p = (const unsigned char *)d->d_buf + doff;
			size_t i;

			if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
			    memcmp((const char *)d->d_buf + noff, "GNU", 4) != 0 || nh.n_descsz > 64)
				continue;
			for (i = 0; i < nh.n_descsz; i++)
				sprintf(t->build_id + 2 * i, "%02x", p[i]);
			return;
		}
	}
}

/* Collects the symbols of one symbol table section into t (appending). */
static int read_symtab(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, struct elfsym_table *t, size_t *names_len,
                       char **err)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	size_t i, count;
	struct elfsym *grown;

	if (!d || sh->sh_entsize == 0)
		return 0;
	count = sh->sh_size / sh->sh_entsize;
	grown = realloc(t->syms, (t->n + count) * sizeof(*grown));
	if (!grown && count)
		return fail(err, TRACER_E_NOMEM, "out of memory reading %s", t->path);
	t->syms = grown;
	for (i = 0; i < count; i++) {
		GElf_Sym s;
		const char *name;
		int type;
		size_t len;
		char *names;

		int label = 0;

		if (!gelf_getsym(d, (int)i, &s))
			continue;
		type = GELF_ST_TYPE(s.st_info);
		if (s.st_value == 0 || s.st_shndx == SHN_UNDEF || s.st_shndx >= SHN_LORESERVE)
			continue;
		if (type == STT_NOTYPE) {
			/* an assembly label: kept when it is in code */
			GElf_Shdr ts;
			Elf_Scn *tscn = elf_getscn(e, s.st_shndx);

			if (!tscn || !gelf_getshdr(tscn, &ts) || !(ts.sh_flags & SHF_EXECINSTR))
				continue;
			label = 1;
		} else if (type != STT_FUNC && type != STT_OBJECT) {
			continue;
		}
		name = elf_strptr(e, sh->sh_link, s.st_name);
		/* local assembler labels (.L...) are not symbols anyone names */
		if (!name || !*name || (label && name[0] == '.'))
			continue;
		len = strlen(name) + 1;
		names = realloc(t->names, *names_len + len);
		if (!names)
			return fail(err, TRACER_E_NOMEM, "out of memory reading %s", t->path);
		t->names = names;
		memcpy(t->names + *names_len, name, len);
		/* name holds an offset until every name is in place (realloc moves them) */
		t->syms[t->n].name = (const char *)(uintptr_t)*names_len;
		t->syms[t->n].addr = s.st_value;
		t->syms[t->n].size = s.st_size;
		t->syms[t->n].is_func = type == STT_FUNC || label;
		t->syms[t->n].is_label = label;
		t->syms[t->n].size_from_next = 0;
		t->n++;
		*names_len += len;
	}
	return 0;
}

/* A label without a size reaches up to the next symbol at a higher address
 * (at most 64 KiB: the last label of a section would otherwise swallow what
 * follows). t is sorted. */
static void size_labels(struct elfsym_table *t)
{
	size_t i, j;

	for (i = 0; i < t->n; i++) {
		struct elfsym *s = &t->syms[i];

		if (!s->is_label || s->size)
			continue;
		for (j = i + 1; j < t->n && t->syms[j].addr == s->addr; j++)
			;
		if (j < t->n && t->syms[j].addr - s->addr <= 0x10000) {
			s->size = t->syms[j].addr - s->addr;
			s->size_from_next = 1;
		}
	}
}

/* How good a name a symbol is for its address: one with an ELF size or a
 * type beats a bare label, and a label without a leading underscore beats
 * the linker's section markers (_sinittext, __irqentry_text_start). */
static int rank(const struct elfsym *s)
{
	return (!s->is_label) * 4 + (s->size && !s->size_from_next) * 2 + (s->name[0] != '_');
}

/* Drops the labels that share their address with a better-named symbol
 * (t sorted by address). */
static void drop_shadowed_labels(struct elfsym_table *t)
{
	size_t i, j, k, out = 0;

	for (i = 0; i < t->n; i = j) {
		int best = 0;

		for (j = i; j < t->n && t->syms[j].addr == t->syms[i].addr; j++)
			if (rank(&t->syms[j]) > best)
				best = rank(&t->syms[j]);
		for (k = i; k < j; k++)
			if (!t->syms[k].is_label || rank(&t->syms[k]) == best)
				t->syms[out++] = t->syms[k];
	}
	t->n = out;
}

int elfsym_is_return_thunk(const struct elfsym *s)
{
	return s && s->is_func && strstr(s->name, "return_thunk") != NULL;
}

static uint64_t file_size(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
}

static int truncated(const char *path, int fd, uint64_t needed, char **err)
{
	return fail(err, TRACER_E_ELF, "%s is truncated: %" PRIu64 " bytes, its ELF needs %" PRIu64
	            " (a partial download or copy?)", path, file_size(fd), needed);
}

/* A file cut short keeps a valid ELF header whose section headers (at the
 * end, in a linker's output) are gone: say so, not "no symbols". */
static int check_whole(Elf *e, int fd, const char *path, char **err)
{
	GElf_Ehdr eh;
	uint64_t end;

	if (!gelf_getehdr(e, &eh))
		return fail(err, TRACER_E_ELF, "%s: damaged ELF header: %s", path, elf_errmsg(-1));
	end = eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize;
	return eh.e_shoff && end > file_size(fd) ? truncated(path, fd, end, err) : 0;
}

int elfsym_load(const char *path, struct elfsym_table **out, char **err)
{
	struct elfsym_table *t = NULL;
	Elf *e = NULL;
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	size_t names_len = 0, i;
	int fd = -1, rc = 0;

	*out = NULL;
	if (elf_version(EV_CURRENT) == EV_NONE)
		return fail(err, TRACER_E_ELF, "libelf: %s", elf_errmsg(-1));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, TRACER_E_IO, "cannot open %s: %s", path, strerror(errno));
	t = calloc(1, sizeof(*t));
	if (!t || !(t->path = strdup(path))) {
		rc = fail(err, TRACER_E_NOMEM, "out of memory reading %s", path);
		goto out;
	}
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF || gelf_getclass(e) == ELFCLASSNONE) {
		rc = fail(err, TRACER_E_ELF, "%s: not an ELF file", path);
		goto out;
	}
	if ((rc = check_whole(e, fd, path, err)))
		goto out;
	while ((scn = elf_nextscn(e, scn)) != NULL) {
		if (!gelf_getshdr(scn, &sh)) {
			rc = fail(err, TRACER_E_ELF, "%s: damaged section header: %s", path, elf_errmsg(-1));
			goto out;
		}
		if (sh.sh_type != SHT_NOBITS && sh.sh_offset + sh.sh_size > file_size(fd)) {
			rc = truncated(path, fd, sh.sh_offset + sh.sh_size, err);
			goto out;
		}
		if (sh.sh_type == SHT_SYMTAB && (rc = read_symtab(e, scn, &sh, t, &names_len, err)))
			goto out;
	}
	/* Only .symtab: .dynsym of a kernel is empty, and a stripped ELF has neither. */
	for (i = 0; i < t->n; i++)
		t->syms[i].name = t->names + (uintptr_t)t->syms[i].name;
	if (t->n)
		qsort(t->syms, t->n, sizeof(*t->syms), by_addr);
	drop_shadowed_labels(t);
	size_labels(t);
	read_build_id(e, t);
out:
	if (e)
		elf_end(e);
	close(fd);
	if (rc) {
		elfsym_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void elfsym_free(struct elfsym_table *t)
{
	if (!t)
		return;
	free(t->path);
	free(t->syms);
	free(t->names);
	free(t);
}

const char *elfsym_path(const struct elfsym_table *t)
{
	return t->path;
}
const char *elfsym_build_id(const struct elfsym_table *t)
{
	return t->build_id;
}
size_t elfsym_count(const struct elfsym_table *t)
{
	return t->n;
}

const struct elfsym *elfsym_at(const struct elfsym_table *t, size_t i)
{
	return i < t->n ? &t->syms[i] : NULL;
}

const struct elfsym *elfsym_find(const struct elfsym_table *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->syms[i].name, name) == 0)
			return &t->syms[i];
	return NULL;
}

const struct elfsym *elfsym_lookup(const struct elfsym_table *t, uint64_t addr)
{
	size_t lo = 0, hi = t->n;

	/* last symbol with sym.addr <= addr, then walk back over same-address aliases */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->syms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo > 0) {
		const struct elfsym *s = &t->syms[--lo];
		uint64_t size = s->size ? s->size : 1;

		if (addr - s->addr < size)
			return s;
		if (s->addr + 0x100000 < addr)
			break;
	}
	return NULL;
}

int elfsym_read(const struct elfsym_table *t, uint64_t addr, void *buf, size_t len, char **err)
{
	Elf *e = NULL;
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	int fd, rc = TRACER_E_ELF;

	fd = open(t->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, TRACER_E_IO, "cannot open %s: %s", t->path, strerror(errno));
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	while (e && (scn = elf_nextscn(e, scn)) != NULL) {
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS || !(sh.sh_flags & SHF_ALLOC) ||
		    addr < sh.sh_addr || addr - sh.sh_addr > sh.sh_size ||
		    len > sh.sh_size - (addr - sh.sh_addr))
			continue;
		d = elf_getdata(scn, NULL);
		if (d && d->d_buf && d->d_size == sh.sh_size) {
			memcpy(buf, (const char *)d->d_buf + (addr - sh.sh_addr), len);
			rc = 0;
		}
		break;
	}
	if (rc)
		fail(err, rc, "%s: no code at 0x%llx (%zu bytes)", t->path, (unsigned long long)addr, len);
	if (e)
		elf_end(e);
	close(fd);
	return rc;
}
