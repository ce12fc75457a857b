/*
 * A small fork-join pool. Workers spin briefly between jobs before they
 * sleep: layers of small models take tens of microseconds, and a condition
 * variable wake-up costs about as much. Spinning pauses the core: on an
 * SMT sibling a tight loop would take issue slots from the thread doing
 * the work.
 *
 * Tasks are claimed from one counter tagged with the job's number, so a
 * worker that wakes late cannot take a task of a later job by mistake,
 * and the caller waits for the job's tasks to be done, not for every
 * worker to notice the job: a descheduled worker costs nothing.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

/* Pause rounds before sleeping: about 0.1 ms. */
#define SPIN_ROUNDS 4000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

struct worker_arg {
	struct cnnviz__pool *pool;
	int id;
};

/*
 * Workers never call the allocator: their arguments live here, allocated
 * and freed by the thread that owns the pool.
 */
struct cnnviz__pool {
	int size; /* workers including the caller */
	pthread_t *threads;
	struct worker_arg *args;
	pthread_mutex_t lock;
	pthread_cond_t wake;  /* workers sleep here between jobs */
	pthread_cond_t done;  /* the caller sleeps here until the job ends */
	atomic_uint_fast64_t job;     /* number of the current job */
	atomic_uint_fast64_t ticket;  /* job number << 32 | next task */
	atomic_int_fast64_t finished; /* tasks of the current job done */
	atomic_int sleepers;
	atomic_int waiting;
	atomic_int stop;
	/* the current job, written before its ticket is published */
	/* atomic: a late worker may read it while the next job is set up */
	atomic_int_fast64_t n_tasks;
	void (*fn)(void *ctx, int64_t task, int worker);
	void *ctx;
};

/* Claims and runs tasks of job `job` until none is left. */
static void run_tasks(struct cnnviz__pool *p, uint_fast64_t job, int worker)
{
	const uint_fast64_t tag = (job & 0xffffffffu) << 32;
	for (;;) {
		uint_fast64_t tk = atomic_load(&p->ticket);
		if ((tk & ~(uint_fast64_t)0xffffffffu) != tag ||
		    (int64_t)(tk & 0xffffffffu) >= atomic_load(&p->n_tasks))
			return;
		/* Fails if another thread took it, or a new job began. */
		if (!atomic_compare_exchange_weak(&p->ticket, &tk, tk + 1))
			continue;
		/* Read before the last task ends: the next job rewrites it. */
		const int64_t n = atomic_load(&p->n_tasks);
		p->fn(p->ctx, (int64_t)(tk & 0xffffffffu), worker);
		if (atomic_fetch_add(&p->finished, 1) + 1 == n &&
		    atomic_load(&p->waiting)) {
			pthread_mutex_lock(&p->lock);
			pthread_cond_signal(&p->done);
			pthread_mutex_unlock(&p->lock);
		}
	}
}

static void *worker_main(void *arg)
{
	const struct worker_arg *wa = arg;
	struct cnnviz__pool *p = wa->pool;
	int id = wa->id;
	uint_fast64_t seen = 0;
	for (;;) {
		for (int spins = 0; atomic_load(&p->job) == seen &&
				    !atomic_load(&p->stop) && spins < SPIN_ROUNDS;
		     spins++)
			cpu_relax();
		if (atomic_load(&p->job) == seen && !atomic_load(&p->stop)) {
			pthread_mutex_lock(&p->lock);
			atomic_fetch_add(&p->sleepers, 1);
			while (atomic_load(&p->job) == seen &&
			       !atomic_load(&p->stop))
				pthread_cond_wait(&p->wake, &p->lock);
			atomic_fetch_sub(&p->sleepers, 1);
			pthread_mutex_unlock(&p->lock);
		}
		if (atomic_load(&p->stop))
			return NULL;
		seen = atomic_load(&p->job);
		run_tasks(p, seen, id);
	}
}

int cnnviz__pool_new(int threads, struct cnnviz__pool **out)
{
	*out = NULL;
	if (threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (int)n : 1;
	}
	if (threads == 1)
		return CNNVIZ_OK; /* NULL pool: everything on the caller */
	struct cnnviz__pool *p = calloc(1, sizeof *p);
	if (!p)
		return CNNVIZ_ERR_NOMEM;
	p->threads = calloc((size_t)threads, sizeof *p->threads);
	p->args = calloc((size_t)threads, sizeof *p->args);
	if (!p->threads || !p->args) {
		free(p->threads);
		free(p->args);
		free(p);
		return CNNVIZ_ERR_NOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done, NULL);
	p->size = 1;
	for (int i = 1; i < threads; i++) {
		p->args[i].pool = p;
		p->args[i].id = i;
		if (pthread_create(&p->threads[i], NULL, worker_main,
				   &p->args[i]) != 0)
			break;
		p->size++;
	}
	if (p->size < threads) {
		cnnviz__pool_free(p);
		return CNNVIZ_ERR_NOMEM;
	}
	*out = p;
	return CNNVIZ_OK;
}

void cnnviz__pool_free(struct cnnviz__pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	atomic_store(&p->stop, 1);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (int i = 1; i < p->size; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done);
	free(p->threads);
	free(p->args);
	free(p);
}

int cnnviz__pool_size(const struct cnnviz__pool *p)
{
	return p ? p->size : 1;
}

void cnnviz__parallel_for(struct cnnviz__pool *p, int64_t n_tasks,
			  void (*fn)(void *ctx, int64_t task, int worker),
			  void *ctx)
{
	/* (the ticket counts tasks in 32 bits; no job comes near) */
	if (!p || n_tasks <= 1 || n_tasks >= (int64_t)0xffffffffu) {
		for (int64_t t = 0; t < n_tasks; t++)
			fn(ctx, t, 0);
		return;
	}
	/*
	 * No task of the previous job is running: it ended below. But a
	 * worker may still be about to claim one: it read the old ticket
	 * (an index at the old job's end) and will compare that index with
	 * n_tasks before its compare-and-swap. Close the ticket first, with
	 * the new tag and no free index, so that swap fails whatever n_tasks
	 * it sees; only then change the job, and publish its first index.
	 */
	const uint_fast64_t job = atomic_load(&p->job) + 1;
	const uint_fast64_t tag = (job & 0xffffffffu) << 32;
	atomic_store(&p->ticket, tag | 0xffffffffu);
	p->fn = fn;
	p->ctx = ctx;
	atomic_store(&p->n_tasks, n_tasks);
	atomic_store(&p->finished, 0);
	atomic_store(&p->ticket, tag);
	atomic_store(&p->job, job);
	if (atomic_load(&p->sleepers)) {
		pthread_mutex_lock(&p->lock);
		pthread_cond_broadcast(&p->wake);
		pthread_mutex_unlock(&p->lock);
	}
	run_tasks(p, job, 0);
	for (int spins = 0; atomic_load(&p->finished) < n_tasks &&
			    spins < SPIN_ROUNDS;
	     spins++)
		cpu_relax();
	if (atomic_load(&p->finished) < n_tasks) {
		pthread_mutex_lock(&p->lock);
		atomic_store(&p->waiting, 1);
		while (atomic_load(&p->finished) < n_tasks)
			pthread_cond_wait(&p->done, &p->lock);
		atomic_store(&p->waiting, 0);
		pthread_mutex_unlock(&p->lock);
	}
}
