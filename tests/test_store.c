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

//  The job lists link jobs through the jobs themselves.
Test (store, jobs_list_keeps_order_through_adds_and_removes)
{
    drv_job_t a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    drv_jobs_t list = {0};
    drv_jobs_add_end (&list, &b);
    drv_jobs_add_end (&list, &c);
    drv_jobs_add_start (&list, &a);
    cr_assert_eq (list.size, 3);
    cr_assert (a.listed && b.listed && c.listed);
    cr_assert_eq (list.first, &a);
    cr_assert_eq (a.next, &b);
    cr_assert_eq (b.next, &c);
    cr_assert_null (c.next);
    cr_assert_eq (list.last, &c);
    cr_assert_eq (c.prev, &b);
    cr_assert_null (a.prev);

    drv_jobs_remove (&list, &b);            //  the middle
    cr_assert_not (b.listed);
    cr_assert_null (b.prev);
    cr_assert_null (b.next);
    cr_assert_eq (a.next, &c);
    cr_assert_eq (c.prev, &a);
    drv_jobs_remove (&list, &c);            //  the last
    cr_assert_eq (list.last, &a);
    cr_assert_null (a.next);
    drv_jobs_remove (&list, &a);            //  the only one
    cr_assert_null (list.first);
    cr_assert_null (list.last);
    cr_assert_eq (list.size, 0);

    drv_jobs_add_start (&list, &c);         //  into an empty list, at the start
    cr_assert_eq (list.first, &c);
    cr_assert_eq (list.last, &c);
    drv_jobs_remove (&list, &c);
}

//  A job moves from list to list with its state: queued, running on a
//  worker's list (as drv_sched keeps them), done; and leaves the last
//  when it expires.
Test (store, a_job_is_in_one_list_at_a_time)
{
    drv_job_t *first = s_submit ("a");
    drv_job_t *second = s_submit ("b");
    cr_assert (first->listed && second->listed);
    cr_assert_eq (first->next, second, "queued in submit order");

    drv_jobs_t running = {0};
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), first);
    cr_assert_not (first->listed, "out of its queue");
    cr_assert_null (second->prev);
    drv_jobs_add_end (&running, first);

    drv_jobs_remove (&running, first);
    drv_store_finish (s_store, first, DROVER_OUTCOME_OK, "r", 1, NULL, 100);
    cr_assert (first->listed, "in the done list");
    drv_store_finish (s_store, second, DROVER_OUTCOME_CANCELLED, NULL, 0, "no", 150);
    cr_assert_eq (first->next, second, "done in finish order");
    cr_assert_eq (drv_queue_size (s_queue), 0);

    cr_assert_eq (drv_store_expire (s_store, 1100), 1);
    cr_assert_null (drv_store_lookup (s_store, 1));
    cr_assert_eq (drv_store_next_deadline (s_store), 1150);
    cr_assert_null (second->prev);
}

//  Walk the store in id order and write the ids met into ids; how many.
static size_t
s_walk_ids (bool newest_first, uint64_t *ids, size_t max)
{
    size_t count = 0;
    uint64_t id = 0;
    drv_job_t *job;
    while (count < max && (job = drv_store_next_by_id (s_store, &id, newest_first))) {
        cr_assert_eq (job->id, id);
        ids [count++] = id;
    }
    return count;
}

//  A walk in id order passes over forgotten jobs, both ways, and the
//  span it may cross shrinks as the oldest jobs go.
Test (store, jobs_are_walked_in_id_order_past_forgotten_ones)
{
    uint64_t ids [8];
    cr_assert_eq (s_walk_ids (false, ids, 8), 0, "an empty store");
    cr_assert_eq (s_walk_ids (true, ids, 8), 0);
    cr_assert_eq (drv_store_id_span (s_store), 0);
    drv_job_t *jobs [5];
    for (int i = 0; i < 5; i++)
        jobs [i] = s_submit ("x");          //  ids 1 to 5
    cr_assert_eq (drv_store_id_span (s_store), 5);
    //  Forget 1 (the oldest) and 3 (in the middle).
    drv_store_finish (s_store, jobs [0], DROVER_OUTCOME_OK, "", 0, NULL, 10);
    drv_store_finish (s_store, jobs [2], DROVER_OUTCOME_OK, "", 0, NULL, 10);
    drv_store_forget (s_store, jobs [0]);
    drv_store_forget (s_store, jobs [2]);
    cr_assert_eq (s_walk_ids (false, ids, 8), 3);
    cr_assert_eq (ids [0], 2);
    cr_assert_eq (ids [1], 4);
    cr_assert_eq (ids [2], 5);
    cr_assert_eq (s_walk_ids (true, ids, 8), 3);
    cr_assert_eq (ids [0], 5);
    cr_assert_eq (ids [1], 4);
    cr_assert_eq (ids [2], 2);
    cr_assert_eq (s_walk_ids (false, ids, 2), 2, "a walk may stop early");
    cr_assert_eq (ids [1], 4);
    cr_assert_eq (drv_store_id_span (s_store), 4, "ids 2 to 5");
    //  The newest goes: a walk down starts past it.
    drv_store_finish (s_store, jobs [4], DROVER_OUTCOME_OK, "", 0, NULL, 10);
    drv_store_forget (s_store, jobs [4]);
    cr_assert_eq (s_walk_ids (true, ids, 8), 2);
    cr_assert_eq (ids [0], 4);
    //  A new job comes after every id given out.
    cr_assert_eq (s_submit ("y")->id, 6);
    cr_assert_eq (s_walk_ids (true, ids, 8), 3);
    cr_assert_eq (ids [0], 6);
    cr_assert_eq (s_walk_ids (false, ids, 8), 3);
    cr_assert_eq (ids [2], 6);
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

//  ---------------------------------------------------------------------
//  Steering: priorities, delays, unique keys, queue settings.

//  Submit text with options.
static drv_job_t *
s_submit_opts (const char *text, const drv_submit_opts_t *opts)
{
    drv_job_t *job = drv_store_submit_opts (s_store, s_queue, 0, s_client, sizeof s_client, text,
                                            strlen (text), opts);
    cr_assert_not_null (job);
    return job;
}

Test (store, higher_priority_leases_first_fifo_within_a_priority)
{
    drv_submit_opts_t low = {.priority = -1}, high = {.priority = 5}, normal = {0};
    drv_job_t *n1 = s_submit_opts ("n1", &normal);
    drv_job_t *l1 = s_submit_opts ("l1", &low);
    drv_job_t *h1 = s_submit_opts ("h1", &high);
    drv_job_t *n2 = s_submit_opts ("n2", &normal);
    drv_job_t *h2 = s_submit_opts ("h2", &high);
    cr_assert_eq (drv_queue_size (s_queue), 5);
    drv_job_t *order [] = {h1, h2, n1, n2, l1};
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), order [i], "lease %zu", i);
    cr_assert_null (drv_store_lease (s_store, s_queue, &s_worker_a));
    cr_assert_eq (drv_queue_size (s_queue), 0);
}

Test (store, requeued_job_goes_to_the_head_of_its_priority_only)
{
    drv_submit_opts_t high = {.priority = 9}, normal = {0};
    drv_job_t *n1 = s_submit_opts ("n1", &normal);
    drv_job_t *n2 = s_submit_opts ("n2", &normal);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), n1);
    drv_job_t *h1 = s_submit_opts ("h1", &high);
    drv_store_requeue (s_store, n1);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), h1);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), n1, "ahead of n2");
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), n2);
}

Test (store, cancelling_the_last_job_of_a_priority_leaves_the_others)
{
    drv_submit_opts_t high = {.priority = 3}, normal = {0};
    drv_job_t *n1 = s_submit_opts ("n1", &normal);
    drv_job_t *h1 = s_submit_opts ("h1", &high);
    drv_store_finish (s_store, h1, DROVER_OUTCOME_CANCELLED, NULL, 0, "cancelled", 0);
    cr_assert_eq (drv_queue_size (s_queue), 1);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), n1);
    drv_job_t *h2 = s_submit_opts ("h2", &high);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), h2, "a level comes back");
}

Test (store, job_with_a_run_at_time_waits_for_it)
{
    drv_submit_opts_t later = {.run_at_ms = 700}, sooner = {.run_at_ms = 300};
    drv_job_t *a = s_submit_opts ("a", &later);
    drv_job_t *b = s_submit_opts ("b", &sooner);
    drv_job_t *c = s_submit_opts ("c", &sooner);
    cr_assert_eq (a->state, DROVER_JOB_QUEUED);
    cr_assert_eq (drv_queue_size (s_queue), 0);
    cr_assert_eq (drv_queue_delayed (s_queue), 3);
    cr_assert_null (drv_store_lease (s_store, s_queue, &s_worker_a), "not before its time");
    cr_assert_eq (drv_store_next_deadline (s_store), 300);
    cr_assert_null (drv_store_pop_due (s_store, 299));
    cr_assert_eq (drv_store_pop_due (s_store, 300), b, "equal times come out in submit order");
    cr_assert_eq (drv_store_pop_due (s_store, 300), c);
    cr_assert_null (drv_store_pop_due (s_store, 300));
    cr_assert_eq (drv_queue_size (s_queue), 2);
    cr_assert_eq (drv_queue_delayed (s_queue), 1);
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), b);
    cr_assert_eq (drv_store_pop_due (s_store, 1000), a);
    cr_assert_eq (drv_queue_delayed (s_queue), 0);
}

Test (store, cancelled_delayed_job_leaves_no_deadline)
{
    drv_submit_opts_t later = {.run_at_ms = 700};
    drv_job_t *a = s_submit_opts ("a", &later);
    drv_store_finish (s_store, a, DROVER_OUTCOME_CANCELLED, NULL, 0, "cancelled", 10);
    cr_assert_eq (drv_queue_delayed (s_queue), 0);
    cr_assert_null (drv_store_pop_due (s_store, 1000));
}

Test (store, delayed_jobs_count_against_the_queue_length)
{
    //  The store takes 10 per queue.
    drv_submit_opts_t later = {.run_at_ms = 700};
    for (int i = 0; i < 6; i++)
        s_submit_opts ("d", &later);
    for (int i = 0; i < 4; i++)
        s_submit ("q");
    char err [256];
    cr_assert_not (drv_store_can_accept (s_store, s_queue, 1, err, sizeof err));
}

Test (store, a_queue_may_have_its_own_length)
{
    drv_store_configure (s_store, s_queue, 0, false, 2);
    cr_assert_eq (drv_store_max_queue (s_store, s_queue), 2);
    s_submit ("a");
    s_submit ("b");
    char err [256];
    cr_assert_not (drv_store_can_accept (s_store, s_queue, 1, err, sizeof err));
    cr_assert (strstr (err, "drover max-queue"), "%s", err);
    drv_store_configure (s_store, s_queue, 0, false, 0);
    cr_assert_eq (drv_store_max_queue (s_store, s_queue), 10, "0: the store's again");
    cr_assert (drv_store_can_accept (s_store, s_queue, 1, err, sizeof err));
}

Test (store, same_unique_key_follows_the_job_that_holds_it)
{
    drv_submit_opts_t keyed = {.unique = "k1"};
    drv_job_t *leader = s_submit_opts ("a", &keyed);
    drv_job_t *follower = s_submit_opts ("a", &keyed);
    drv_submit_opts_t other_key = {.unique = "k2"};
    drv_job_t *other = s_submit_opts ("b", &other_key);
    cr_assert_null (drv_store_leader (leader));
    cr_assert_eq (drv_store_leader (follower), leader);
    cr_assert_eq (drv_store_find_unique (s_store, s_queue, "k1"), leader);
    cr_assert_null (drv_store_find_unique (s_store, s_queue, "k3"));
    cr_assert_null (drv_store_leader (other));
    cr_assert_str_eq (drv_store_unique_key (follower), "k1");
    cr_assert_eq (drv_queue_size (s_queue), 2, "a follower is not queued");
    cr_assert_eq (drv_store_lease (s_store, s_queue, &s_worker_a), leader);
    //  Still held while running.
    drv_job_t *second = s_submit_opts ("a", &keyed);
    cr_assert_eq (drv_store_leader (second), leader);
    drv_store_finish (s_store, leader, DROVER_OUTCOME_OK, "out", 3, NULL, 50);
    cr_assert_eq (drv_store_followed (s_store), follower);
    cr_assert_eq (drv_store_followed (s_store), second);
    cr_assert_null (drv_store_followed (s_store));
    cr_assert_eq (follower->state, DROVER_JOB_SUCCEEDED);
    cr_assert_eq (follower->result_size, 3);
    cr_assert_arr_eq (follower->result, "out", 3);
    cr_assert_null (follower->payload, "its payload went as any finished job's");
    //  The key is free again: a new job holds it.
    drv_job_t *fresh = s_submit_opts ("a", &keyed);
    cr_assert_null (drv_store_leader (fresh));
}

Test (store, followers_of_a_failed_job_are_not_dead_letters)
{
    drv_submit_opts_t keyed = {.unique = "k1"};
    drv_job_t *leader = s_submit_opts ("a", &keyed);
    drv_job_t *follower = s_submit_opts ("a", &keyed);
    drv_store_lease (s_store, s_queue, &s_worker_a);
    drv_store_finish (s_store, leader, DROVER_OUTCOME_ERROR, NULL, 0, "broke", 50);
    cr_assert (leader->dead);
    cr_assert_eq (drv_store_followed (s_store), follower);
    cr_assert_eq (follower->state, DROVER_JOB_FAILED);
    cr_assert_str_eq (follower->reason, "broke");
    cr_assert_not (follower->dead);
    drv_job_t *dead [4];
    cr_assert_eq (drv_store_dead (s_store, dead, 4), 1);
}

Test (store, a_follower_cancelled_alone_leaves_its_leader)
{
    drv_submit_opts_t keyed = {.unique = "k1"};
    drv_job_t *leader = s_submit_opts ("a", &keyed);
    drv_job_t *follower = s_submit_opts ("a", &keyed);
    drv_store_finish (s_store, follower, DROVER_OUTCOME_CANCELLED, NULL, 0, "cancelled", 5);
    cr_assert_null (drv_store_leader (follower));
    drv_store_lease (s_store, s_queue, &s_worker_a);
    drv_store_finish (s_store, leader, DROVER_OUTCOME_OK, "x", 1, NULL, 6);
    cr_assert_null (drv_store_followed (s_store), "it left before");
}

Test (store, durable_store_keeps_priorities_delays_keys_and_settings)
{
    char dir [] = "/tmp/drover-store-XXXXXX";
    cr_assert_not_null (mkdtemp (dir));
    char err [512];
    drv_store_t *store = drv_store_new (1000, 100);
    drv_store_set_wall_offset (store, 1000000);
    cr_assert_eq (drv_store_attach (store, dir, 0, NULL, NULL, err, sizeof err), 0, "%s", err);
    drv_queue_t *queue = drv_store_queue (store, "resize");
    drv_store_configure (store, queue, 3, true, 50);
    drv_submit_opts_t low = {.priority = -2}, high = {.priority = 4},
                      later = {.run_at_ms = 5000}, keyed = {.unique = "u"};
    uint64_t ids [5];
    const drv_submit_opts_t *opts [] = {&low, &high, &later, &keyed, &keyed};
    for (size_t i = 0; i < 5; i++) {
        drv_job_t *job = drv_store_submit_opts (store, queue, i + 1, s_client, sizeof s_client,
                                                "p", 1, opts [i]);
        cr_assert_not_null (job);
        ids [i] = job->id;
    }
    cr_assert_eq (drv_store_commit (store, err, sizeof err), 0, "%s", err);
    drv_store_destroy (&store);

    //  Restarted 2 s later on a clock whose zero is elsewhere: the
    //  delayed job still has 3 s to wait.
    store = drv_store_new (1000, 100);
    drv_store_set_wall_offset (store, 1002000 - 20000);
    cr_assert_eq (drv_store_attach (store, dir, 20000, NULL, NULL, err, sizeof err), 0, "%s",
                  err);
    queue = drv_store_find_queue (store, "resize");
    cr_assert_not_null (queue);
    cr_assert_eq (drv_queue_limit (queue), 3);
    cr_assert (drv_queue_paused (queue));
    cr_assert_eq (drv_queue_max_queue (queue), 50);
    cr_assert_eq (drv_queue_delayed (queue), 1);
    cr_assert_eq (drv_store_next_deadline (store), 23000);
    cr_assert_eq (drv_store_leader (drv_store_lookup (store, ids [4])),
                  drv_store_lookup (store, ids [3]), "the follower follows again");
    cr_assert_eq (drv_store_lease (store, queue, &s_worker_a)->id, ids [1]);
    cr_assert_eq (drv_store_lease (store, queue, &s_worker_a)->id, ids [3]);
    cr_assert_eq (drv_store_lease (store, queue, &s_worker_a)->id, ids [0]);
    cr_assert_null (drv_store_lease (store, queue, &s_worker_a));
    cr_assert_eq (drv_store_pop_due (store, 23000)->id, ids [2]);
    drv_store_destroy (&store);
    char command [128];
    snprintf (command, sizeof command, "rm -rf %s", dir);
    cr_assert_eq (system (command), 0);
}

Test (store, bytes_count_payloads_results_and_each_job)
{
    cr_assert_eq (drv_store_bytes (s_store), 0);
    drv_job_t *job = drv_store_submit (s_store, s_queue, 1, s_client, sizeof s_client, "12345",
                                       5, 0, 0);
    cr_assert_eq (drv_store_bytes (s_store), DRV_STORE_JOB_BYTES + 5);
    //  Finished: the payload goes, the result and reason count.
    drv_store_finish (s_store, job, DROVER_OUTCOME_OK, "abc", 3, NULL, 0);
    cr_assert_eq (drv_store_bytes (s_store), DRV_STORE_JOB_BYTES + 3);
    drv_store_expire (s_store, 1000);
    cr_assert_eq (drv_store_bytes (s_store), 0);
}

Test (store, acknowledged_results_make_room_when_bytes_are_short)
{
    char err [256];
    drv_store_set_limits (s_store, 2 * DRV_STORE_JOB_BYTES + 100, 10);
    drv_job_t *acked = drv_store_submit (s_store, s_queue, 1, s_client, sizeof s_client, "a", 1,
                                         0, 0);
    drv_job_t *unacked = drv_store_submit (s_store, s_queue, 2, s_client, sizeof s_client, "b",
                                           1, 0, 0);
    drv_store_finish (s_store, unacked, DROVER_OUTCOME_OK, "B", 1, NULL, 0);
    drv_store_finish (s_store, acked, DROVER_OUTCOME_OK, "A", 1, NULL, 0);
    drv_store_acked (s_store, acked);
    uint64_t acked_id = acked->id, unacked_id = unacked->id;
    //  Full: the acknowledged result is forgotten early for a new job,
    //  the unacknowledged one is kept for its client.
    cr_assert (drv_store_can_hold (s_store, "resize", DRV_STORE_JOB_BYTES + 1, err, sizeof err),
               "%s", err);
    cr_assert_null (drv_store_lookup (s_store, acked_id));
    cr_assert_not_null (drv_store_lookup (s_store, unacked_id));
    drv_store_submit (s_store, s_queue, 3, s_client, sizeof s_client, "c", 1, 0, 0);
    cr_assert_not (drv_store_can_hold (s_store, "resize", DRV_STORE_JOB_BYTES + 1, err,
                                       sizeof err));
    cr_assert_neq (strstr (err, "queue full"), NULL, "%s", err);
    cr_assert_not_null (drv_store_lookup (s_store, unacked_id));
}
