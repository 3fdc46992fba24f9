/*  test_sched.c - tests for broker/drv_sched.

    This suite doubles as the module's usage example: put a scheduler
    over a store with drv_sched_new (store), register workers with
    drv_sched_ready (identity, name, functions, slots), submit jobs to the
    store, and call drv_sched_dispatch with an emit callback that sends
    each worker its batch. When a worker reports a result, drv_sched_complete
    returns the job (still RUNNING) for drv_store_finish; a worker that
    leaves or goes silent is drv_sched_remove'd or drv_sched_expire'd, and
    its running jobs go back to the head of their queues.
*/

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "drv_sched.h"

#define MAX_CALLS 16
#define MAX_BATCH 16

//  What one emit call carried.
typedef struct {
    drv_peer_t *peer;
    uint64_t ids [MAX_BATCH];
    size_t count;
} emit_call_t;

//  Every emit call of one dispatch, in order.
typedef struct {
    emit_call_t calls [MAX_CALLS];
    size_t ncalls;
} emit_log_t;

static void
s_emit (drv_peer_t *peer, drv_job_t **jobs, size_t count, void *arg)
{
    emit_log_t *log = (emit_log_t *) arg;
    cr_assert_lt (log->ncalls, MAX_CALLS);
    cr_assert_leq (count, MAX_BATCH);
    emit_call_t *call = &log->calls [log->ncalls++];
    call->peer = peer;
    call->count = count;
    for (size_t i = 0; i < count; i++)
        call->ids [i] = jobs [i]->id;
}

static drv_store_t *s_store;
static drv_sched_t *s_sched;

static emit_log_t s_log;

//  Dispatch once, recording into s_log afresh.
static size_t
s_dispatch (void)
{
    memset (&s_log, 0, sizeof s_log);
    return drv_sched_dispatch (s_sched, s_emit, &s_log);
}

static void
s_setup (void)
{
    s_store = drv_store_new (60000, 1000);
    cr_assert_not_null (s_store);
    s_sched = drv_sched_new (s_store);
    cr_assert_not_null (s_sched);
}

static void
s_teardown (void)
{
    drv_sched_destroy (&s_sched);
    drv_store_destroy (&s_store);
}

//  A worker whose identity is its name, offering one function.
static drv_peer_t *
s_worker (const char *name, const char *function, uint32_t slots)
{
    const char *functions [] = {function};
    drv_peer_t *peer = drv_sched_ready (s_sched, (const uint8_t *) name, strlen (name), name,
                                        functions, 1, slots, 0);
    cr_assert_not_null (peer);
    return peer;
}

//  Submit count jobs for function; returns the first id.
static uint64_t
s_submit (const char *function, size_t count)
{
    drv_queue_t *queue = drv_store_queue (s_store, function);
    uint64_t first = 0;
    for (size_t i = 0; i < count; i++) {
        drv_job_t *job = drv_store_submit (s_store, queue, i, (const uint8_t *) "c", 1, "x", 1,
                                           0, 0);
        cr_assert_not_null (job);
        if (!first)
            first = job->id;
    }
    return first;
}

//  Complete job_id on peer and finish it in the store.
static void
s_complete (drv_peer_t *peer, uint64_t job_id)
{
    drv_job_t *job = drv_sched_complete (s_sched, peer, job_id);
    cr_assert_not_null (job, "job %" PRIu64 " was not running on the worker", job_id);
    drv_store_finish (s_store, job, DROVER_OUTCOME_OK, "ok", 2, NULL, 0);
}

static drv_job_t *
s_job (uint64_t id)
{
    drv_job_t *job = drv_store_lookup (s_store, id);
    cr_assert_not_null (job);
    return job;
}

TestSuite (sched, .init = s_setup, .fini = s_teardown);

Test (sched, dispatch_with_no_workers_dispatches_nothing)
{
    s_submit ("resize", 3);
    cr_assert_eq (s_dispatch (), 0);
    cr_assert_eq (s_log.ncalls, 0);
    cr_assert_eq (drv_queue_size (drv_store_queue (s_store, "resize")), 3);
}

Test (sched, dispatch_with_no_jobs_emits_nothing)
{
    s_worker ("w1", "resize", 2);
    cr_assert_eq (s_dispatch (), 0);
    cr_assert_eq (s_log.ncalls, 0);
}

Test (sched, worker_gets_no_more_jobs_than_its_slots)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 2);
    uint64_t first = s_submit ("resize", 5);
    cr_assert_eq (s_dispatch (), 2);
    cr_assert_eq (s_log.ncalls, 1);
    cr_assert_eq (s_log.calls [0].peer, w1);
    cr_assert_eq (s_log.calls [0].count, 2);
    cr_assert_eq (s_log.calls [0].ids [0], first);
    cr_assert_eq (s_log.calls [0].ids [1], first + 1);
    cr_assert_eq (drv_peer_inflight (w1), 2);
    cr_assert_eq (drv_queue_size (drv_store_queue (s_store, "resize")), 3);
}

Test (sched, dispatched_jobs_run_on_their_worker)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 1);
    uint64_t id = s_submit ("resize", 1);
    s_dispatch ();
    cr_assert_eq (s_job (id)->state, DROVER_JOB_RUNNING);
    cr_assert_eq (s_job (id)->worker, w1);
    cr_assert_eq (s_job (id)->attempts, 1);
}

Test (sched, full_worker_gets_nothing_more)
{
    s_worker ("w1", "resize", 2);
    s_submit ("resize", 5);
    s_dispatch ();
    cr_assert_eq (s_dispatch (), 0);
    cr_assert_eq (s_log.ncalls, 0);
}

Test (sched, completing_one_job_gives_exactly_one_more)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 2);
    uint64_t first = s_submit ("resize", 5);
    s_dispatch ();
    s_complete (w1, first);
    cr_assert_eq (drv_peer_inflight (w1), 1);
    cr_assert_eq (s_dispatch (), 1);
    cr_assert_eq (s_log.ncalls, 1);
    cr_assert_eq (s_log.calls [0].peer, w1);
    cr_assert_eq (s_log.calls [0].count, 1);
    cr_assert_eq (s_log.calls [0].ids [0], first + 2);
    cr_assert_eq (drv_peer_inflight (w1), 2);
}

Test (sched, complete_returns_the_job_still_running)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 1);
    uint64_t id = s_submit ("resize", 1);
    s_dispatch ();
    drv_job_t *job = drv_sched_complete (s_sched, w1, id);
    cr_assert_eq (job, s_job (id));
    cr_assert_eq (job->state, DROVER_JOB_RUNNING);
    drv_store_finish (s_store, job, DROVER_OUTCOME_OK, NULL, 0, NULL, 0);
}

Test (sched, worker_never_gets_a_function_it_does_not_offer)
{
    s_worker ("w1", "resize", 4);
    s_submit ("thumbnail", 3);
    cr_assert_eq (s_dispatch (), 0);
    cr_assert_eq (s_log.ncalls, 0);
    cr_assert_eq (drv_queue_size (drv_store_queue (s_store, "thumbnail")), 3);
}

Test (sched, worker_gets_only_jobs_of_its_functions)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 4);
    s_submit ("thumbnail", 2);
    uint64_t wanted = s_submit ("resize", 1);
    cr_assert_eq (s_dispatch (), 1);
    cr_assert_eq (s_log.calls [0].peer, w1);
    cr_assert_eq (s_log.calls [0].count, 1);
    cr_assert_eq (s_log.calls [0].ids [0], wanted);
}

Test (sched, jobs_spread_over_hungry_workers)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 2);
    drv_peer_t *w2 = s_worker ("w2", "resize", 2);
    s_submit ("resize", 4);
    cr_assert_eq (s_dispatch (), 4);
    cr_assert_eq (s_log.ncalls, 2);
    for (size_t i = 0; i < 2; i++)
        cr_assert_eq (s_log.calls [i].count, 2);
    cr_assert_neq (s_log.calls [0].peer, s_log.calls [1].peer);
    cr_assert_eq (drv_peer_inflight (w1), 2);
    cr_assert_eq (drv_peer_inflight (w2), 2);
}

Test (sched, worker_takes_its_functions_queues_in_turn)
{
    const char *functions [] = {"resize", "thumbnail"};
    drv_peer_t *w1 = drv_sched_ready (s_sched, (const uint8_t *) "w1", 2, "w1", functions, 2,
                                      4, 0);
    cr_assert_not_null (w1);
    uint64_t resize = s_submit ("resize", 3);
    uint64_t thumbnail = s_submit ("thumbnail", 3);
    cr_assert_eq (s_dispatch (), 4);
    cr_assert_eq (s_log.ncalls, 1);
    uint64_t want [] = {resize, thumbnail, resize + 1, thumbnail + 1};
    cr_assert_arr_eq (s_log.calls [0].ids, want, sizeof want);
}

Test (sched, remove_requeues_running_jobs_at_the_head_in_order)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 2);
    uint64_t first = s_submit ("resize", 5);
    s_dispatch ();
    cr_assert_eq (drv_sched_remove (s_sched, &w1, 0), 2);
    cr_assert_null (w1);
    cr_assert_eq (drv_sched_size (s_sched), 0);
    drv_queue_t *queue = drv_store_queue (s_store, "resize");
    cr_assert_eq (drv_queue_size (queue), 5);
    cr_assert_eq (drv_queue_running (queue), 0);
    //  The store's FIFO shows the order: the two that ran, then the rest.
    for (uint64_t id = first; id < first + 5; id++)
        cr_assert_eq (drv_store_lease (s_store, queue, NULL)->id, id);
}

Test (sched, removed_workers_jobs_go_to_another_worker_next)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 2);
    uint64_t first = s_submit ("resize", 5);
    s_dispatch ();
    drv_sched_remove (s_sched, &w1, 0);
    drv_peer_t *w2 = s_worker ("w2", "resize", 2);
    cr_assert_eq (s_dispatch (), 2);
    cr_assert_eq (s_log.calls [0].peer, w2);
    cr_assert_eq (s_log.calls [0].ids [0], first);
    cr_assert_eq (s_log.calls [0].ids [1], first + 1);
    cr_assert_eq (s_job (first)->attempts, 2);
    cr_assert_eq (s_job (first)->worker, w2);
}

Test (sched, complete_of_a_queued_job_is_null)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 1);
    uint64_t first = s_submit ("resize", 2);
    s_dispatch ();
    cr_assert_null (drv_sched_complete (s_sched, w1, first + 1));
    cr_assert_eq (s_job (first + 1)->state, DROVER_JOB_QUEUED);
    cr_assert_eq (drv_peer_inflight (w1), 1);
}

Test (sched, complete_of_an_unknown_job_is_null)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 1);
    s_submit ("resize", 1);
    s_dispatch ();
    cr_assert_null (drv_sched_complete (s_sched, w1, 999));
    cr_assert_eq (drv_peer_inflight (w1), 1);
}

Test (sched, complete_of_job_id_zero_is_null)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 1);
    s_submit ("resize", 1);
    s_dispatch ();
    cr_assert_null (drv_sched_complete (s_sched, w1, 0));
    cr_assert_eq (drv_peer_inflight (w1), 1);
}

Test (sched, complete_of_another_workers_job_is_null_and_changes_nothing)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 1);
    drv_peer_t *w2 = s_worker ("w2", "resize", 1);
    s_submit ("resize", 2);
    s_dispatch ();
    uint64_t on_w1 = s_log.calls [0].peer == w1 ? s_log.calls [0].ids [0]
                                                : s_log.calls [1].ids [0];
    cr_assert_null (drv_sched_complete (s_sched, w2, on_w1));
    cr_assert_eq (s_job (on_w1)->state, DROVER_JOB_RUNNING);
    cr_assert_eq (s_job (on_w1)->worker, w1);
    cr_assert_eq (drv_peer_inflight (w1), 1);
    cr_assert_eq (drv_peer_inflight (w2), 1);
    //  w1 can still complete it.
    s_complete (w1, on_w1);
}

Test (sched, late_result_after_requeue_is_null)
{
    s_worker ("w1", "resize", 1);
    uint64_t id = s_submit ("resize", 1);
    s_dispatch ();
    //  w1 reconnects offering something else, so its old job goes back
    //  to the queue and on to w2; then the old run's result arrives.
    drv_peer_t *again = s_worker ("w1", "thumbnail", 1);
    drv_peer_t *w2 = s_worker ("w2", "resize", 1);
    s_dispatch ();
    cr_assert_null (drv_sched_complete (s_sched, again, id));
    cr_assert_eq (s_job (id)->state, DROVER_JOB_RUNNING);
    cr_assert_eq (s_job (id)->worker, w2);
    cr_assert_eq (drv_peer_inflight (w2), 1);
    cr_assert_eq (drv_peer_inflight (again), 0);
}

Test (sched, complete_of_a_finished_job_is_null)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 1);
    uint64_t id = s_submit ("resize", 1);
    s_dispatch ();
    s_complete (w1, id);
    cr_assert_null (drv_sched_complete (s_sched, w1, id));
    cr_assert_eq (s_job (id)->state, DROVER_JOB_SUCCEEDED);
    cr_assert_eq (drv_peer_inflight (w1), 0);
}

Test (sched, ready_again_requeues_the_old_running_jobs)
{
    s_worker ("w1", "resize", 2);
    uint64_t first = s_submit ("resize", 3);
    s_dispatch ();
    drv_peer_t *again = s_worker ("w1", "resize", 2);
    cr_assert_eq (drv_sched_size (s_sched), 1);
    cr_assert_eq (drv_peer_inflight (again), 0);
    cr_assert_eq (s_job (first)->state, DROVER_JOB_QUEUED);
    cr_assert_eq (s_job (first + 1)->state, DROVER_JOB_QUEUED);
    cr_assert_eq (drv_queue_size (drv_store_queue (s_store, "resize")), 3);
    cr_assert_eq (s_dispatch (), 2);
    cr_assert_eq (s_log.calls [0].peer, again);
    cr_assert_eq (s_log.calls [0].ids [0], first);
    cr_assert_eq (s_log.calls [0].ids [1], first + 1);
}

Test (sched, find_returns_the_worker_by_identity)
{
    drv_peer_t *w1 = s_worker ("w1", "resize", 1);
    const uint8_t binary [] = {0x00, 0x6b, 0x8b, 0x45, 0x67};
    drv_peer_t *w2 = drv_sched_ready (s_sched, binary, sizeof binary, "w2",
                                      (const char *[]) {"resize"}, 1, 3, 0);
    cr_assert_eq (drv_sched_find (s_sched, (const uint8_t *) "w1", 2), w1);
    cr_assert_eq (drv_sched_find (s_sched, binary, sizeof binary), w2);
    cr_assert_null (drv_sched_find (s_sched, (const uint8_t *) "w3", 2));
    size_t length = 0;
    const uint8_t *identity = drv_peer_identity (w2, &length);
    cr_assert_eq (length, sizeof binary);
    cr_assert_arr_eq (identity, binary, sizeof binary);
    cr_assert_str_eq (drv_peer_name (w2), "w2");
    cr_assert_eq (drv_peer_slots (w2), 3);
}

Test (sched, ready_with_an_empty_identity_is_refused)
{
    cr_assert_null (drv_sched_ready (s_sched, (const uint8_t *) "", 0, "w",
                                     (const char *[]) {"resize"}, 1, 1, 0));
    cr_assert_eq (drv_sched_size (s_sched), 0);
}

Test (sched, expire_drops_only_workers_silent_since_the_deadline)
{
    drv_peer_t *old = s_worker ("old", "resize", 1);
    drv_peer_t *edge = s_worker ("edge", "resize", 1);
    drv_peer_t *fresh = s_worker ("fresh", "resize", 1);
    drv_peer_set_last_seen (old, 100);
    drv_peer_set_last_seen (edge, 200);
    drv_peer_set_last_seen (fresh, 300);
    cr_assert_eq (drv_sched_expire (s_sched, 200, 200, NULL, NULL), 1);
    cr_assert_eq (drv_sched_size (s_sched), 2);
    cr_assert_null (drv_sched_find (s_sched, (const uint8_t *) "old", 3));
    cr_assert_eq (drv_sched_find (s_sched, (const uint8_t *) "edge", 4), edge);
    cr_assert_eq (drv_sched_find (s_sched, (const uint8_t *) "fresh", 5), fresh);
    cr_assert_eq (drv_peer_last_seen (fresh), 300);
}

//  What the gone callback was told.
typedef struct {
    char name [32];
    size_t requeued;
    size_t calls;
} gone_log_t;

static void
s_gone (drv_peer_t *peer, size_t requeued, void *arg)
{
    gone_log_t *log = (gone_log_t *) arg;
    snprintf (log->name, sizeof log->name, "%s", drv_peer_name (peer));
    log->requeued = requeued;
    log->calls++;
}

Test (sched, expire_tells_gone_how_many_jobs_were_requeued)
{
    drv_peer_t *silent = s_worker ("silent", "resize", 3);
    drv_peer_t *alive = s_worker ("alive", "thumbnail", 1);
    uint64_t first = s_submit ("resize", 2);
    s_dispatch ();
    drv_peer_set_last_seen (silent, 10);
    drv_peer_set_last_seen (alive, 1000);
    gone_log_t log = {.calls = 0};
    cr_assert_eq (drv_sched_expire (s_sched, 500, 500, s_gone, &log), 1);
    cr_assert_eq (log.calls, 1);
    cr_assert_str_eq (log.name, "silent");
    cr_assert_eq (log.requeued, 2);
    cr_assert_eq (s_job (first)->state, DROVER_JOB_QUEUED);
    cr_assert_eq (s_job (first + 1)->state, DROVER_JOB_QUEUED);
    cr_assert_eq (drv_peer_inflight (alive), 0);
}

Test (sched, queue_workers_follow_ready_and_remove)
{
    drv_queue_t *queue = drv_store_queue (s_store, "resize");
    drv_peer_t *w1 = s_worker ("w1", "resize", 1);
    cr_assert_eq (drv_queue_workers (queue), 1);
    drv_peer_t *w2 = s_worker ("w2", "resize", 1);
    cr_assert_eq (drv_queue_workers (queue), 2);
    s_worker ("w2", "resize", 1);            //  ready again: still one
    cr_assert_eq (drv_queue_workers (queue), 2);
    drv_sched_remove (s_sched, &w1, 0);
    cr_assert_eq (drv_queue_workers (queue), 1);
    w2 = drv_sched_find (s_sched, (const uint8_t *) "w2", 2);
    drv_sched_remove (s_sched, &w2, 0);
    cr_assert_eq (drv_queue_workers (queue), 0);
}

Test (sched, ready_counts_a_function_offered_twice_once)
{
    const char *functions [] = {"resize", "resize"};
    drv_peer_t *w1 = drv_sched_ready (s_sched, (const uint8_t *) "w1", 2, "w1", functions, 2,
                                      1, 0);
    cr_assert_not_null (w1);
    cr_assert_eq (drv_queue_workers (drv_store_queue (s_store, "resize")), 1);
    drv_sched_remove (s_sched, &w1, 0);
    cr_assert_eq (drv_queue_workers (drv_store_queue (s_store, "resize")), 0);
}

Test (sched, expired_workers_leave_their_queue_counts)
{
    drv_queue_t *queue = drv_store_queue (s_store, "resize");
    drv_peer_t *w1 = s_worker ("w1", "resize", 1);
    drv_peer_set_last_seen (w1, 0);
    drv_sched_expire (s_sched, 1, 1, NULL, NULL);
    cr_assert_eq (drv_queue_workers (queue), 0);
}

Test (sched, job_that_loses_its_worker_too_often_is_given_up)
{
    drv_sched_set_max_lost (s_sched, 2);
    uint64_t id = s_submit ("f", 1);
    drv_job_t *job = drv_store_lookup (s_store, id);
    for (int round = 1; round <= 2; round++) {
        drv_peer_t *peer = s_worker ("w", "f", 1);
        s_dispatch ();
        cr_assert_eq (job->state, DROVER_JOB_RUNNING);
        cr_assert_eq (drv_sched_remove (s_sched, &peer, 100), 1, "requeued after loss %d", round);
        cr_assert_null (drv_sched_given_up (s_sched));
    }
    drv_peer_t *peer = s_worker ("w", "f", 1);
    s_dispatch ();
    cr_assert_eq (drv_sched_remove (s_sched, &peer, 700), 0, "third loss: not requeued");
    cr_assert_eq (drv_sched_given_up (s_sched), job);
    cr_assert_null (drv_sched_given_up (s_sched));
    cr_assert_eq (job->state, DROVER_JOB_FAILED);
    cr_assert_eq (job->outcome, DROVER_OUTCOME_LOST);
    cr_assert_eq (job->finished_ms, 700);
    cr_assert_neq (strstr (job->reason, "lost its worker 3 times"), NULL, "%s", job->reason);
}

//  ---------------------------------------------------------------------
//  Queue settings: the Semaphore and pause.

Test (sched, limit_holds_across_workers)
{
    drv_peer_t *a = s_worker ("a", "resize", 4);
    drv_peer_t *b = s_worker ("b", "resize", 4);
    uint64_t first = s_submit ("resize", 6);
    drv_queue_t *queue = drv_store_queue (s_store, "resize");
    drv_store_configure (s_store, queue, 3, false, 0);
    cr_assert_eq (s_dispatch (), 3, "three at once, whatever the free slots");
    cr_assert_eq (drv_queue_running (queue), 3);
    cr_assert_eq (s_dispatch (), 0);
    //  One finishes: one more starts, on whichever worker has room.
    drv_job_t *done = s_job (first);
    s_complete ((drv_peer_t *) done->worker, first);
    cr_assert_eq (s_dispatch (), 1);
    cr_assert_eq (drv_queue_running (queue), 3);
    //  0 lifts the limit.
    drv_store_configure (s_store, queue, 0, false, 0);
    cr_assert_eq (s_dispatch (), 2);
    cr_assert_eq (drv_peer_inflight (a) + drv_peer_inflight (b), 5);
}

Test (sched, paused_queue_takes_jobs_but_dispatches_none)
{
    s_worker ("a", "resize", 4);
    s_worker ("b", "thumbnail", 4);
    drv_queue_t *queue = drv_store_queue (s_store, "resize");
    drv_store_configure (s_store, queue, 0, true, 0);
    s_submit ("resize", 3);
    s_submit ("thumbnail", 2);
    cr_assert_eq (s_dispatch (), 2, "other queues run on");
    cr_assert_eq (drv_queue_size (queue), 3);
    drv_store_configure (s_store, queue, 0, false, 0);
    cr_assert_eq (s_dispatch (), 3);
    cr_assert_eq (drv_queue_size (queue), 0);
}

Test (sched, priorities_hold_across_a_dispatch)
{
    drv_peer_t *a = s_worker ("a", "resize", 1);
    drv_queue_t *queue = drv_store_queue (s_store, "resize");
    drv_submit_opts_t high = {.priority = 1};
    uint64_t low = s_submit ("resize", 1);
    drv_job_t *urgent =
        drv_store_submit_opts (s_store, queue, 99, (const uint8_t *) "c", 1, "x", 1, &high);
    cr_assert_eq (s_dispatch (), 1);
    cr_assert_eq (s_log.calls [0].ids [0], urgent->id);
    s_complete (a, urgent->id);
    cr_assert_eq (s_dispatch (), 1);
    cr_assert_eq (s_log.calls [0].ids [0], low);
}
