/*
 * The Sentry's vDSO: clock_gettime, gettimeofday, time and getcpu answered in the guest from
 * the data page the Sentry keeps (struct vvar, mirrored by kernel/vdso/vvar.rs), falling back
 * to the real `syscall` whenever that page says it cannot answer (TSC not usable, unknown
 * clock). Built freestanding: no libc, no relocations, no stack protector.
 */
#include <stdint.h>

#define SYS_gettimeofday 96
#define SYS_time 201
#define SYS_clock_gettime 228
#define SYS_getcpu 309

#define VCLOCK_TSC 1
#define VGETCPU_RDTSCP 1
#define NSEC_PER_SEC 1000000000ULL

struct timespec64 {
	int64_t tv_sec;
	int64_t tv_nsec;
};
struct timeval64 {
	int64_t tv_sec;
	int64_t tv_usec;
};
struct timezone32 {
	int32_t tz_minuteswest;
	int32_t tz_dsttime;
};

/* One clock: value at vvar.tsc_base, and nanoseconds per tick in 32.32 fixed point. */
struct vclock {
	uint64_t base_ns;
	uint64_t mult;
};

/* Indices into vvar.clocks. */
enum { V_REALTIME, V_MONOTONIC, V_MONOTONIC_RAW, V_BOOTTIME, V_CLOCKS };

struct vvar {
	uint32_t seq; /* odd while the Sentry writes */
	uint32_t clock_mode;
	uint32_t getcpu_mode;
	uint32_t ncpus;
	uint64_t tsc_base;
	struct vclock clocks[V_CLOCKS];
};

/* The data page sits one page below the image (see vdso.lds). The Sentry changes it at any
 * time: every read must really happen, hence volatile. */
extern const volatile struct vvar vvar_page __attribute__((visibility("hidden")));

static inline long sys2(long nr, long a, long b)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
	return ret;
}

static inline long sys3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

/* The TSC, read after every earlier load and before every later one. */
static inline uint64_t rdtsc_fenced(void)
{
	uint32_t lo, hi;
	__asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
}

/* Nanoseconds of clock `idx`, or 0 when the page says to ask the Sentry. */
static uint64_t vclock_ns(int idx)
{
	const volatile struct vvar *v = &vvar_page;
	for (;;) {
		uint32_t seq = v->seq;
		if (seq & 1) {
			__asm__ volatile("pause");
			continue;
		}
		if (v->clock_mode != VCLOCK_TSC)
			return 0;
		uint64_t base = v->tsc_base;
		uint64_t base_ns = v->clocks[idx].base_ns;
		uint64_t mult = v->clocks[idx].mult;
		uint64_t tsc = rdtsc_fenced();
		if (v->seq != seq)
			continue;
		uint64_t delta = tsc > base ? tsc - base : 0;
		return base_ns + (uint64_t)(((unsigned __int128)delta * mult) >> 32);
	}
}

static int clock_index(int clk)
{
	switch (clk) {
	case 0: /* CLOCK_REALTIME */
	case 5: /* CLOCK_REALTIME_COARSE */
		return V_REALTIME;
	case 1: /* CLOCK_MONOTONIC */
	case 6: /* CLOCK_MONOTONIC_COARSE */
		return V_MONOTONIC;
	case 4:
		return V_MONOTONIC_RAW;
	case 7:
		return V_BOOTTIME;
	default:
		return -1;
	}
}

int __vdso_clock_gettime(int clk, struct timespec64 *ts)
{
	int idx = clock_index(clk);
	uint64_t ns = idx < 0 ? 0 : vclock_ns(idx);
	if (ns == 0)
		return (int)sys2(SYS_clock_gettime, clk, (long)ts);
	ts->tv_sec = (int64_t)(ns / NSEC_PER_SEC);
	ts->tv_nsec = (int64_t)(ns % NSEC_PER_SEC);
	return 0;
}

int __vdso_gettimeofday(struct timeval64 *tv, struct timezone32 *tz)
{
	uint64_t ns = vclock_ns(V_REALTIME);
	if (ns == 0)
		return (int)sys2(SYS_gettimeofday, (long)tv, (long)tz);
	if (tv) {
		tv->tv_sec = (int64_t)(ns / NSEC_PER_SEC);
		tv->tv_usec = (int64_t)(ns % NSEC_PER_SEC / 1000);
	}
	if (tz) {
		/* The Sentry keeps no timezone: UTC, as its syscall reports. */
		tz->tz_minuteswest = 0;
		tz->tz_dsttime = 0;
	}
	return 0;
}

int64_t __vdso_time(int64_t *t)
{
	uint64_t ns = vclock_ns(V_REALTIME);
	if (ns == 0)
		return sys2(SYS_time, (long)t, 0);
	int64_t s = (int64_t)(ns / NSEC_PER_SEC);
	if (t)
		*t = s;
	return s;
}

int __vdso_getcpu(unsigned *cpu, unsigned *node, void *unused)
{
	const volatile struct vvar *v = &vvar_page;
	if (v->getcpu_mode == VGETCPU_RDTSCP) {
		uint32_t lo, hi, aux;
		__asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
		if ((aux & 0xfff) < v->ncpus) {
			if (cpu)
				*cpu = aux & 0xfff;
			/* One NUMA node, as the Sentry's syscall reports. */
			if (node)
				*node = 0;
			return 0;
		}
	}
	return (int)sys3(SYS_getcpu, (long)cpu, (long)node, (long)unused);
}

int clock_gettime(int, struct timespec64 *)
	__attribute__((weak, alias("__vdso_clock_gettime")));
int gettimeofday(struct timeval64 *, struct timezone32 *)
	__attribute__((weak, alias("__vdso_gettimeofday")));
int64_t time(int64_t *) __attribute__((weak, alias("__vdso_time")));
int getcpu(unsigned *, unsigned *, void *) __attribute__((weak, alias("__vdso_getcpu")));
