/*  test_store.c - tests for broker/drv_store.

    This suite doubles as the module's usage example: create a store with
    drv_store_new (keep_ms, max_queue), get a function's queue with
    drv_store_queue, ask drv_store_can_accept before drv_store_submit,
    drv_store_lease a job to a worker, and drv_store_finish it (or
    drv_store_requeue it if its worker left). Finished jobs stay for
    keep_ms; the caller passes the clock to drv_store_expire.
*/

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "drv_store.h"

//  A client routing id, with a NUL byte as ROUTER ids often have.
static const uint8_t s_client [] = {0x00, 'c', 'l', 'i', 0x01};

//  Workers are opaque to the store: any distinct addresses do.
static int s_worker_a, s_worker_b;

static drv_store_t *s_store;
static drv_queue_t *s_queue;

static void
s_setup (void)
{
    s_store = drv_store_new (1000, 10);
    cr_assert_not_null (s_store);
    s_queue = drv_store_queue (s_store, "resize");
    cr_assert_not_null (s_queue);
}

static void
s_teardown (void)
{
    drv_store_destroy (&s_store);
}

//  Submit a job whose payload is text, with tag 0 and no timeout.
static drv_job_t *
s_submit (const char *text)
{
    drv_job_t *job = drv_store_submit (s_store, s_queue, 0, s_client, sizeof s_client, text,
                                       strlen (text), 0, 0);
    cr_assert_not_null (job);
    return job;
}

TestSuite (store, .init = s_setup, .fini = s_teardown);

Test (store, destroy_nulls_the_pointer)
{
    drv_store_t *store = drv_store_new (10, 10);
    drv_job_t *job = drv_store_submit (store, drv_store_queue (store, "f"), 1, s_client,
                                       sizeof s_client, "x", 1, 0, 0);
    cr_assert_not_null (job);
    drv_store_destroy (&store);
    cr_assert_null (store);
}

Test (store, queue_is_created_once_per_function)
{
    cr_assert_eq (drv_store_queue (s_store, "resize"), s_queue);
    cr_assert_eq (drv_store_find_queue (s_store, "resize"), s_queue);
    cr_assert_str_eq (drv_queue_name (s_queue), "resize");
    cr_assert_null (drv_store_find_queue (s_store, "thumbnail"));
    drv_queue_t *other = drv_store_queue (s_store, "thumbnail");
    cr_assert_not_null (other);
    cr_assert_neq (other, s_queue);
}

Test (store, ids_increase_from_one)
{
    cr_assert_eq (s_submit ("a")->id, 1);
    cr_assert_eq (s_submit ("b")->id, 2);
    cr_assert_eq (s_submit ("c")->id, 3);
}

Test (store, submit_copies_the_job_fields)
{
    char payload [] = "input";
    drv_job_t *job = drv_store_submit (s_store, s_queue, 77, s_client, sizeof s_client,
                                       payload, 5, 2500, 0);
    payload [0] = 'X';
    cr_assert_eq (job->state, DROVER_JOB_QUEUED);
    cr_assert_eq (job->tag, 77);
    cr_assert_eq (job->queue, s_queue);
    cr_assert_eq (job->timeout_ms, 2500);
    cr_assert_eq (job->attempts, 0);
    cr_assert_null (job->worker);
    cr_assert_eq (job->size, 5);
    cr_assert_arr_eq (job->payload, "input", 5);
    cr_assert_eq (job->client_len, sizeof s_client);
    cr_assert_arr_eq (job->client, s_client, sizeof s_client);
}

Test (store, submit_takes_an_empty_payload)
{
    drv_job_t *job = drv_store_submit (s_store, s_queue, 0, s_client, sizeof s_client, NULL,
                                       0, 0, 0);
    cr_assert_not_null (job);
    cr_assert_eq (job->size, 0);
}

Test (store, lookup_finds_a_job_by_id)
{
    drv_job_t *first = s_submit ("a");
    drv_job_t *second = s_submit ("b");
    cr_assert_eq (drv_store_lookup (s_store, first->id), first);
    cr_assert_eq (drv_store_lookup (s_store, second->id), second);
}

Test (store, lookup_of_an_unknown_id_is_null)
{
    s_submit ("a");
    cr_assert_null (drv_store_lookup (s_store, 2));
    cr_assert_null (drv_store_lookup (s_store, UINT64_MAX));
}

Test (store, lookup_of_id_zero_is_null)
{
    //  No job ever has id 0, so the answer is NULL, as for any id that
    //  never existed.
    s_submit ("a");
    cr_assert_null (drv_store_lookup (s_store, 0));
}

Test (store, lease_takes_jobs_in_fifo_order)
{
    drv_job_t *a = s_submit ("a");
    drv_job_t *b = s_submit ("b");
    drv_job_t *c = s_submit ("c");
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), a);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), b);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), c);
}

Test (store, lease_of_an_empty_queue_is_null)
{
    cr_assert_null (drv_store_lease (s_store, s_queue, &s_worker_a));
}

Test (store, lease_makes_the_job_running_on_the_worker)
{
    drv_job_t *job = s_submit ("a");
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), job);
    cr_assert_eq (job->state, DROVER_JOB_RUNNING);
    cr_assert_eq (job->attempts, 1);
    cr_assert_eq (job->worker, &s_worker_a);
}

Test (store, every_lease_counts_an_attempt)
{
    drv_job_t *job = s_submit ("a");
    drv_store_lease (s_store, s_queue, &s_worker_a);
    drv_store_requeue (s_store, job);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_b), job);
    cr_assert_eq (job->attempts, 2);
    cr_assert_eq (job->worker, &s_worker_b);
}

Test (store, requeue_puts_the_job_back_at_the_head)
{
    drv_job_t *a = s_submit ("a");
    drv_job_t *b = s_submit ("b");
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), a);
    drv_store_requeue (s_store, a);
    cr_assert_eq (a->state, DROVER_JOB_QUEUED);
    cr_assert_null (a->worker);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_b), a);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_b), b);
}

Test (store, finish_of_a_running_job_succeeds_with_a_copy_of_the_result)
{
    drv_job_t *job = s_submit ("a");
    drv_store_lease (s_store, s_queue, &s_worker_a);
    char output [] = "out\0put";
    drv_store_finish (s_store, job, DROVER_OUTCOME_OK, output, sizeof output, "", 500);
    output [0] = 'X';
    cr_assert_eq (job->state, DROVER_JOB_SUCCEEDED);
    cr_assert_eq (job->outcome, DROVER_OUTCOME_OK);
    cr_assert_eq (job->result_size, sizeof output);
    cr_assert_arr_eq (job->result, "out\0put", sizeof output);
    cr_assert_null (job->reason);
    cr_assert_null (job->worker);
    cr_assert_eq (job->finished_ms, 500);
}

Test (store, finish_of_a_running_job_fails_with_a_copy_of_the_reason)
{
    drv_job_t *job = s_submit ("a");
    drv_store_lease (s_store, s_queue, &s_worker_a);
    char reason [] = "exit status 3";
    drv_store_finish (s_store, job, DROVER_OUTCOME_ERROR, NULL, 0, reason, 500);
    reason [0] = 'X';
    cr_assert_eq (job->state, DROVER_JOB_FAILED);
    cr_assert_eq (job->outcome, DROVER_OUTCOME_ERROR);
    cr_assert_str_eq (job->reason, "exit status 3");
    cr_assert_eq (job->result_size, 0);
}

Test (store, finish_of_a_queued_job_takes_it_off_the_queue)
{
    drv_job_t *a = s_submit ("a");
    drv_job_t *b = s_submit ("b");
    drv_store_finish (s_store, a, DROVER_OUTCOME_LOST, NULL, 0, "gave up", 500);
    cr_assert_eq (a->state, DROVER_JOB_FAILED);
    cr_assert_str_eq (a->reason, "gave up");
    cr_assert_eq (drv_queue_size (s_queue), 1);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), b);
}

Test (store, finish_frees_the_payload)
{
    drv_job_t *job = s_submit ("a big input");
    drv_store_lease (s_store, s_queue, &s_worker_a);
    drv_store_finish (s_store, job, DROVER_OUTCOME_OK, "ok", 2, NULL, 500);
    cr_assert_null (job->payload);
    cr_assert_eq (job->size, 0);
}

Test (store, second_finish_is_ignored)
{
    drv_job_t *job = s_submit ("a");
    drv_store_lease (s_store, s_queue, &s_worker_a);
    drv_store_finish (s_store, job, DROVER_OUTCOME_OK, "first", 5, NULL, 500);
    drv_store_finish (s_store, job, DROVER_OUTCOME_ERROR, "second", 6, "late", 600);
    cr_assert_eq (job->state, DROVER_JOB_SUCCEEDED);
    cr_assert_eq (job->outcome, DROVER_OUTCOME_OK);
    cr_assert_eq (job->result_size, 5);
    cr_assert_arr_eq (job->result, "first", 5);
    cr_assert_null (job->reason);
    cr_assert_eq (job->finished_ms, 500);
    cr_assert_eq (drv_store_finished (s_store), 1);
}

Test (store, can_accept_up_to_max_queue)
{
    cr_assert (drv_store_can_accept (s_store, s_queue, 10, NULL, 0));
    for (int i = 0; i < 9; i++)
        s_submit ("a");
    char err [256] = "";
    cr_assert (drv_store_can_accept (s_store, s_queue, 1, err, sizeof err));
}

Test (store, can_accept_refuses_past_max_queue_with_queue_full)
{
    for (int i = 0; i < 9; i++)
        s_submit ("a");
    char err [256] = "";
    cr_assert_not (drv_store_can_accept (s_store, s_queue, 2, err, sizeof err));
    cr_assert_not_null (strstr (err, "queue full"), "err is '%s'", err);
    cr_assert_not_null (strstr (err, "resize"), "err is '%s'", err);
}

Test (store, can_accept_counts_per_queue)
{
    for (int i = 0; i < 10; i++)
        s_submit ("a");
    drv_queue_t *other = drv_store_queue (s_store, "thumbnail");
    char err [256] = "";
    cr_assert_not (drv_store_can_accept (s_store, s_queue, 1, err, sizeof err));
    cr_assert (drv_store_can_accept (s_store, other, 10, err, sizeof err));
}

Test (store, expire_keeps_finished_jobs_until_keep_ms)
{
    drv_job_t *job = s_submit ("a");
    uint64_t id = job->id;
    drv_store_finish (s_store, job, DROVER_OUTCOME_OK, NULL, 0, NULL, 5000);
    cr_assert_eq (drv_store_expire (s_store, 5000), 0);
    cr_assert_eq (drv_store_expire (s_store, 5999), 0);
    cr_assert_eq (drv_store_lookup (s_store, id), job);
    cr_assert_eq (drv_store_expire (s_store, 6000), 1);
    cr_assert_null (drv_store_lookup (s_store, id));
    cr_assert_eq (drv_store_size (s_store), 0);
}

Test (store, expire_removes_only_finished_jobs)
{
    drv_job_t *queued = s_submit ("a");
    drv_job_t *running = s_submit ("b");
    drv_job_t *done = s_submit ("c");
    drv_store_lease (s_store, s_queue, &s_worker_a);   //  takes queued
    drv_store_lease (s_store, s_queue, &s_worker_a);   //  takes running
    drv_store_requeue (s_store, queued);
    drv_store_finish (s_store, done, DROVER_OUTCOME_OK, NULL, 0, NULL, 0);
    cr_assert_eq (drv_store_expire (s_store, INT64_MAX / 2), 1);
    cr_assert_eq (drv_store_lookup (s_store, queued->id), queued);
    cr_assert_eq (drv_store_lookup (s_store, running->id), running);
    cr_assert_eq (drv_store_size (s_store), 2);
}

Test (store, expire_goes_in_finish_order)
{
    drv_job_t *a = s_submit ("a");
    drv_job_t *b = s_submit ("b");
    uint64_t a_id = a->id, b_id = b->id;
    drv_store_finish (s_store, a, DROVER_OUTCOME_OK, NULL, 0, NULL, 100);
    drv_store_finish (s_store, b, DROVER_OUTCOME_OK, NULL, 0, NULL, 300);
    cr_assert_eq (drv_store_expire (s_store, 1100), 1);
    cr_assert_null (drv_store_lookup (s_store, a_id));
    cr_assert_eq (drv_store_lookup (s_store, b_id), b);
    cr_assert_eq (drv_store_expire (s_store, 1300), 1);
    cr_assert_null (drv_store_lookup (s_store, b_id));
}

Test (store, next_deadline_is_minus_one_without_finished_jobs)
{
    s_submit ("a");
    cr_assert_eq (drv_store_next_deadline (s_store), -1);
}

Test (store, next_deadline_reports_the_oldest_finished_job)
{
    drv_job_t *a = s_submit ("a");
    drv_job_t *b = s_submit ("b");
    drv_store_finish (s_store, a, DROVER_OUTCOME_OK, NULL, 0, NULL, 100);
    drv_store_finish (s_store, b, DROVER_OUTCOME_OK, NULL, 0, NULL, 300);
    cr_assert_eq (drv_store_next_deadline (s_store), 1100);
    drv_store_expire (s_store, 1100);
    cr_assert_eq (drv_store_next_deadline (s_store), 1300);
    drv_store_expire (s_store, 1300);
    cr_assert_eq (drv_store_next_deadline (s_store), -1);
}

Test (store, queue_counts_waiting_and_running_jobs)
{
    drv_job_t *a = s_submit ("a");
    s_submit ("b");
    s_submit ("c");
    cr_assert_eq (drv_queue_size (s_queue), 3);
    cr_assert_eq (drv_queue_running (s_queue), 0);
    drv_store_lease (s_store, s_queue, &s_worker_a);
    drv_store_lease (s_store, s_queue, &s_worker_a);
    cr_assert_eq (drv_queue_size (s_queue), 1);
    cr_assert_eq (drv_queue_running (s_queue), 2);
    drv_store_requeue (s_store, a);
    cr_assert_eq (drv_queue_size (s_queue), 2);
    cr_assert_eq (drv_queue_running (s_queue), 1);
}

Test (store, finish_of_a_running_job_releases_its_running_count)
{
    drv_job_t *job = s_submit ("a");
    drv_store_lease (s_store, s_queue, &s_worker_a);
    drv_store_finish (s_store, job, DROVER_OUTCOME_OK, NULL, 0, NULL, 0);
    cr_assert_eq (drv_queue_running (s_queue), 0);
    cr_assert_eq (drv_queue_size (s_queue), 0);
}

Test (store, queue_workers_is_a_slot_for_the_scheduler)
{
    cr_assert_eq (drv_queue_workers (s_queue), 0);
    drv_queue_set_workers (s_queue, 3);
    cr_assert_eq (drv_queue_workers (s_queue), 3);
}

Test (store, counts_jobs_submitted_and_finished)
{
    drv_job_t *a = s_submit ("a");
    s_submit ("b");
    cr_assert_eq (drv_store_submitted (s_store), 2);
    cr_assert_eq (drv_store_finished (s_store), 0);
    drv_store_finish (s_store, a, DROVER_OUTCOME_OK, NULL, 0, NULL, 0);
    cr_assert_eq (drv_store_finished (s_store), 1);
    cr_assert_eq (drv_store_size (s_store), 2);
    drv_store_expire (s_store, 1000);
    cr_assert_eq (drv_store_size (s_store), 1);
    cr_assert_eq (drv_store_submitted (s_store), 2);
    cr_assert_eq (drv_store_finished (s_store), 1);
}

Test (store, find_tag_names_the_job_a_client_submitted)
{
    static const uint8_t other [] = {'o', 't', 'h'};
    drv_job_t *job = drv_store_submit (s_store, s_queue, 77, s_client, sizeof s_client, "x", 1, 0, 0);
    cr_assert_eq (drv_store_find_tag (s_store, s_client, sizeof s_client, 77), job);
    cr_assert_null (drv_store_find_tag (s_store, s_client, sizeof s_client, 78));
    cr_assert_null (drv_store_find_tag (s_store, other, sizeof other, 77), "tags are per client");
}

Test (store, find_tag_forgets_expired_jobs)
{
    drv_job_t *job = drv_store_submit (s_store, s_queue, 5, s_client, sizeof s_client, "x", 1, 0, 0);
    drv_store_finish (s_store, job, DROVER_OUTCOME_OK, "y", 1, NULL, 1000);
    cr_assert_eq (drv_store_find_tag (s_store, s_client, sizeof s_client, 5), job,
                  "finished jobs are still found, so a resend gets the result");
    drv_store_expire (s_store, 1000 + 1000);
    cr_assert_null (drv_store_find_tag (s_store, s_client, sizeof s_client, 5));
}

Test (store, delayed_job_rejoins_its_queue_when_due)
{
    drv_job_t *job = s_submit ("a");
    drv_job_t *other = s_submit ("b");
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), job);
    cr_assert_eq (drv_store_delay (s_store, job, 500), 0);
    cr_assert_eq (job->state, DROVER_JOB_QUEUED);
    cr_assert_eq (drv_queue_running (s_queue), 0);
    cr_assert_eq (drv_queue_size (s_queue), 1, "waiting for its retry, not in the queue");
    cr_assert_eq (drv_store_next_deadline (s_store), 500);
    cr_assert_null (drv_store_pop_due (s_store, 499));
    cr_assert_eq (drv_store_pop_due (s_store, 500), job);
    cr_assert_eq (drv_queue_size (s_queue), 2);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), other, "back at the tail");
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), job);
}

Test (store, lease_end_comes_due_while_running)
{
    drv_job_t *job = s_submit ("a");
    drv_store_lease (s_store, s_queue, &s_worker_a);
    cr_assert_eq (drv_store_lease_until (s_store, job, 300), 0);
    cr_assert_eq (drv_store_next_deadline (s_store), 300);
    cr_assert_eq (drv_store_pop_due (s_store, 300), job);
    cr_assert_eq (job->state, DROVER_JOB_RUNNING, "the caller decides");
    cr_assert_null (drv_store_pop_due (s_store, 1000));
}

Test (store, finishing_clears_a_pending_deadline)
{
    drv_job_t *job = s_submit ("a");
    drv_store_lease (s_store, s_queue, &s_worker_a);
    drv_store_lease_until (s_store, job, 300);
    drv_store_finish (s_store, job, DROVER_OUTCOME_OK, "r", 1, NULL, 100);
    cr_assert_null (drv_store_pop_due (s_store, 1000));
    drv_job_t *waiting = s_submit ("b");
    drv_store_lease (s_store, s_queue, &s_worker_a);
    drv_store_delay (s_store, waiting, 400);
    drv_store_finish (s_store, waiting, DROVER_OUTCOME_ERROR, NULL, 0, "gave up", 100);
    cr_assert_eq (waiting->state, DROVER_JOB_FAILED);
    cr_assert_null (drv_store_pop_due (s_store, 1000));
    cr_assert_eq (drv_queue_size (s_queue), 0);
}

Test (store, failed_job_becomes_a_dead_letter_that_does_not_expire)
{
    drv_job_t *job = s_submit ("input");
    drv_store_lease (s_store, s_queue, &s_worker_a);
    drv_store_finish (s_store, job, DROVER_OUTCOME_ERROR, NULL, 0, "boom", 100);
    cr_assert (job->dead);
    cr_assert_eq (job->size, 5);
    cr_assert_eq (memcmp (job->payload, "input", 5), 0, "a dead letter keeps its input");
    drv_job_t *dead [4];
    cr_assert_eq (drv_store_dead (s_store, dead, 4), 1);
    cr_assert_eq (dead [0], job);
    drv_store_expire (s_store, 1000000);
    cr_assert_eq (drv_store_lookup (s_store, job->id), job, "dead letters do not expire");
}

Test (store, cancelled_and_succeeded_jobs_are_not_dead_letters)
{
    drv_job_t *cancelled = s_submit ("a");
    drv_store_finish (s_store, cancelled, DROVER_OUTCOME_CANCELLED, NULL, 0, "cancelled", 1);
    drv_job_t *ok = s_submit ("b");
    drv_store_finish (s_store, ok, DROVER_OUTCOME_OK, "r", 1, NULL, 1);
    drv_job_t *dead [4];
    cr_assert_eq (drv_store_dead (s_store, dead, 4), 0);
    cr_assert_not (cancelled->dead);
    cr_assert_null (cancelled->payload);
}

Test (store, revived_dead_letter_is_queued_again)
{
    drv_job_t *job = s_submit ("input");
    drv_store_lease (s_store, s_queue, &s_worker_a);
    job->failures = 3;
    drv_store_finish (s_store, job, DROVER_OUTCOME_TIMEOUT, NULL, 0, "slow", 100);
    cr_assert_eq (drv_store_revive (s_store, job), 0);
    cr_assert_eq (job->state, DROVER_JOB_QUEUED);
    cr_assert_not (job->dead);
    cr_assert_eq (job->failures, 0, "retries renewed");
    cr_assert_null (job->reason);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), job);
    cr_assert_eq (memcmp (job->payload, "input", 5), 0);
    drv_job_t *dead [4];
    cr_assert_eq (drv_store_dead (s_store, dead, 4), 0);
    cr_assert_eq (drv_store_revive (s_store, job), -1, "only dead letters revive");
}

Test (store, dead_letters_are_capped_and_purged)
{
    drv_store_set_max_dead (s_store, 2);
    uint64_t ids [3];
    for (int i = 0; i < 3; i++) {
        drv_job_t *job = s_submit ("x");
        ids [i] = job->id;
        drv_store_finish (s_store, job, DROVER_OUTCOME_ERROR, NULL, 0, "no", 10);
    }
    uint64_t oldest = ids [0];
    drv_job_t *dead [4];
    cr_assert_eq (drv_store_dead (s_store, dead, 4), 2, "the oldest went");
    cr_assert_null (drv_store_lookup (s_store, oldest));
    drv_store_forget (s_store, dead [0]);
    cr_assert_eq (drv_store_dead (s_store, dead, 4), 1);
}
