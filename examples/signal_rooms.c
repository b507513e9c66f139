/* Process-directed signals and rooms: the safe pattern.
 *
 * A signal sent to the process (kill(getpid(), ...)) runs its handler on
 * whichever thread the kernel picks, and on several threads at once when
 * several are sent.  A room has one owner and its calls are not re-entrant,
 * so one room shared by every run of the handler would be corrupted.  Give
 * each thread its own room for its handler and look it up through a
 * thread-local pointer; leave SA_NODEFER off, so a handler never nests on
 * its own thread.  Pages the handler takes are handed to a consumer thread,
 * which gives them back with lab_free_pages (async-signal-safe, any thread).
 * (The library's own thread, lab-reclaim, blocks these signals: they land
 * on the program's threads.)
 */
#define _DEFAULT_SOURCE   /* usleep, with -std=c11 */
#include <labyrinth.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { THREADS = 2, SIGNALS = 2000, SLOTS = 256 };

static lab_arena *arena;
static _Thread_local lab_room *irq_room;      /* this thread's handler room */
static _Atomic(void *) mailbox[SLOTS];
static atomic_ulong dropped, done, workers_gone;

static void on_signal(int sig)
{
    (void)sig;
    lab_room *r = irq_room;
    if (!r)                     /* a thread without a room: the signal is not ours to serve */
        return;
    void *page = lab_room_alloc(r, LAB_GFP_ATOMIC | LAB_GFP_NOWARN);
    if (!page) {
        atomic_fetch_add(&dropped, 1);
        return;
    }
    memset(page, 0xab, 64);     /* "receive a packet" */
    for (unsigned i = 0; i < SLOTS; i++) {
        void *expect = NULL;
        if (atomic_compare_exchange_strong(&mailbox[i], &expect, page))
            return;
    }
    lab_room_free(r, page);     /* no consumer slot free: back to our own room */
    atomic_fetch_add(&dropped, 1);
}

static void *worker(void *arg)
{
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = 16;
    rc.name = "irq";
    lab_room *r;
    if (lab_room_create(arena, &rc, &r))
        return NULL;
    irq_room = r;               /* from here on, this thread's handler has a room */
    while (!atomic_load(&done))
        usleep(100);
    sigset_t block;             /* no handler may run on this thread from here */
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    irq_room = NULL;
    *(lab_room **)arg = r;      /* destroyed by main once every page is home */
    return NULL;
}

/* Until the workers are gone, and then once more: a signal still pending
 * when `done` is set may run a handler on a worker until that worker
 * blocks it, and only the workers' exit says no handler will run again. */
static void *consumer(void *arg)
{
    (void)arg;
    for (;;) {
        int last = atomic_load(&workers_gone) != 0;
        for (unsigned i = 0; i < SLOTS; i++) {
            void *p = atomic_exchange(&mailbox[i], NULL);
            if (p)
                lab_free_pages(arena, p, 0);
        }
        if (last)
            return NULL;
    }
}

int main(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 16 << 20;
    if (lab_arena_create(&cfg, &arena))
        return 1;
    /* Only the workers take the signal: main and the consumer block it. */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;  /* no SA_NODEFER: never nested on one thread */
    sigaction(SIGUSR1, &sa, NULL);

    pthread_t w[THREADS], c;
    lab_room *rooms[THREADS] = { 0 };
    pthread_create(&c, NULL, consumer, NULL);
    for (int i = 0; i < THREADS; i++) {
        pthread_sigmask(SIG_UNBLOCK, &block, NULL);   /* inherited unblocked */
        pthread_create(&w[i], NULL, worker, &rooms[i]);
        pthread_sigmask(SIG_BLOCK, &block, NULL);
    }
    usleep(20000);              /* let the workers make their rooms */
    for (int i = 0; i < SIGNALS; i++) {
        kill(getpid(), SIGUSR1);
        if (i % 64 == 0)
            usleep(100);
    }
    usleep(20000);
    atomic_store(&done, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(w[i], NULL);
    atomic_store(&workers_gone, 1);
    pthread_join(c, NULL);
    for (int i = 0; i < THREADS; i++)
        lab_room_destroy(rooms[i]);

    lab_stats s;
    lab_stats_get(arena, &s);
    int check = lab_check(arena);
    printf("signals sent %d, pages dropped %lu, pages out at the end %zu, lab_check %d\n", SIGNALS,
           (unsigned long)atomic_load(&dropped), s.allocated_pages, check);
    lab_arena_destroy(arena);
    return check == 0 && s.allocated_pages == 0 ? 0 : 1;
}
