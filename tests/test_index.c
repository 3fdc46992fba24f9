/*  test_index - drv_index against a plain array as the reference: random
    inserts and removes (seeded), keys that all collide, runs that wrap
    around the end of the slot array, growth and shrinking.
*/

#include <criterion/criterion.h>
#include <stdlib.h>
#include <time.h>

#include "drv_index.h"

typedef struct {
    uint64_t key;
    bool in;
} s_item_t;

//  Hash modes: well spread, or every key the same (one long run).
static bool s_collide;

static uint64_t
s_hash_key (uint64_t key)
{
    return s_collide ? 7 : drv_index_mix (key);
}

static uint64_t
s_hash (const void *item)
{
    return s_hash_key (((const s_item_t *) item)->key);
}

static bool
s_match (const void *item, const void *key)
{
    return ((const s_item_t *) item)->key == *(const uint64_t *) key;
}

static void
s_check_all (drv_index_t *index, s_item_t *items, size_t count)
{
    size_t in = 0;
    for (size_t i = 0; i < count; i++) {
        s_item_t *found =
            (s_item_t *) drv_index_find (index, s_hash_key (items [i].key), s_match, &items [i].key);
        if (items [i].in) {
            cr_assert_eq (found, &items [i], "item %zu not found", i);
            in++;
        }
        else
            cr_assert_null (found, "item %zu found after removal", i);
    }
    cr_assert_eq (drv_index_size (index), in);
}

static void
s_churn (size_t count, size_t rounds, unsigned seed)
{
    srand (seed);
    cr_log_info ("seed %u", seed);
    s_item_t *items = (s_item_t *) calloc (count, sizeof *items);
    for (size_t i = 0; i < count; i++)
        items [i].key = (uint64_t) i * 2654435761u + 1;
    drv_index_t *index = drv_index_new (s_hash);
    cr_assert_not_null (index);
    for (size_t round = 0; round < rounds; round++) {
        size_t i = (size_t) rand () % count;
        if (items [i].in) {
            cr_assert (drv_index_remove (index, &items [i]));
            items [i].in = false;
            cr_assert_not (drv_index_remove (index, &items [i]), "removed twice");
        }
        else {
            cr_assert_eq (drv_index_insert (index, &items [i]), 0);
            items [i].in = true;
        }
        if (round % 997 == 0)
            s_check_all (index, items, count);
    }
    s_check_all (index, items, count);
    //  Drain: the index shrinks back.
    size_t peak = drv_index_memory (index);
    for (size_t i = 0; i < count; i++)
        if (items [i].in) {
            cr_assert (drv_index_remove (index, &items [i]));
            items [i].in = false;
        }
    s_check_all (index, items, count);
    cr_assert_leq (drv_index_memory (index), peak);
    drv_index_destroy (&index);
    cr_assert_null (index);
    free (items);
}

Test (index, random_inserts_and_removes_match_the_reference)
{
    s_collide = false;
    s_churn (20000, 200000, (unsigned) time (NULL));
}

Test (index, keys_that_all_collide_still_work)
{
    s_collide = true;
    s_churn (300, 20000, (unsigned) time (NULL));
}

Test (index, a_million_items_grow_and_shrink)
{
    s_collide = false;
    size_t count = 1000000;
    s_item_t *items = (s_item_t *) calloc (count, sizeof *items);
    drv_index_t *index = drv_index_new (s_hash);
    for (size_t i = 0; i < count; i++) {
        items [i].key = i + 1;
        cr_assert_eq (drv_index_insert (index, &items [i]), 0);
    }
    cr_assert_eq (drv_index_size (index), count);
    //  At most 0.7 full: under 23 bytes of slots per item.
    cr_assert_lt (drv_index_memory (index), count * 23);
    for (size_t i = 0; i < count; i += 3)
        cr_assert_eq (drv_index_find (index, s_hash_key (i + 1), s_match, &items [i].key),
                      &items [i]);
    for (size_t i = 0; i < count; i++)
        cr_assert (drv_index_remove (index, &items [i]));
    cr_assert_eq (drv_index_size (index), 0);
    cr_assert_lt (drv_index_memory (index), 4096);
    drv_index_destroy (&index);
    free (items);
}

Test (index, same_key_twice_is_found_until_both_go)
{
    s_collide = false;
    s_item_t a = {.key = 5}, b = {.key = 5};
    drv_index_t *index = drv_index_new (s_hash);
    cr_assert_eq (drv_index_insert (index, &a), 0);
    cr_assert_eq (drv_index_insert (index, &b), 0);
    uint64_t key = 5;
    cr_assert (drv_index_remove (index, &a));
    cr_assert_eq (drv_index_find (index, s_hash_key (5), s_match, &key), &b);
    cr_assert (drv_index_remove (index, &b));
    cr_assert_null (drv_index_find (index, s_hash_key (5), s_match, &key));
    drv_index_destroy (&index);
}
