/*  test_heap - drv_heap, the broker's deadlines; doubles as its usage
    example.
*/

#include <criterion/criterion.h>
#include <stdlib.h>

#include "drv_heap.h"

typedef struct {
    int64_t due;                     //  its deadline
    size_t slot;                     //  its place in the heap
} s_thing_t;

Test (heap, pops_in_deadline_order)
{
    drv_heap_t *heap = drv_heap_new ();
    enum { COUNT = 1000 };
    s_thing_t *things = calloc (COUNT, sizeof *things);
    srand (7);
    for (int i = 0; i < COUNT; i++) {
        things [i].due = rand () % 500;
        things [i].slot = DRV_HEAP_NONE;
        cr_assert_eq (drv_heap_push (heap, &things [i], things [i].due, &things [i].slot), 0);
    }
    cr_assert_eq (drv_heap_size (heap), COUNT);
    int64_t last = -1, peeked;
    for (int i = 0; i < COUNT; i++) {
        s_thing_t *next = drv_heap_peek (heap, &peeked);
        s_thing_t *thing = drv_heap_pop (heap);
        cr_assert_eq (next, thing);
        cr_assert_eq (peeked, thing->due);
        cr_assert_geq (thing->due, last);
        cr_assert_eq (thing->slot, DRV_HEAP_NONE, "a popped item has no place");
        last = thing->due;
    }
    cr_assert_null (drv_heap_pop (heap));
    cr_assert_null (drv_heap_peek (heap, NULL));
    free (things);
    drv_heap_destroy (&heap);
    cr_assert_null (heap);
}

Test (heap, removes_from_the_middle)
{
    drv_heap_t *heap = drv_heap_new ();
    s_thing_t things [50];
    for (int i = 0; i < 50; i++) {
        things [i] = (s_thing_t) {.due = (i * 37) % 50, .slot = DRV_HEAP_NONE};
        drv_heap_push (heap, &things [i], things [i].due, &things [i].slot);
    }
    //  Take out every third, then the rest come in order.
    for (int i = 0; i < 50; i += 3) {
        drv_heap_remove (heap, &things [i].slot);
        cr_assert_eq (things [i].slot, DRV_HEAP_NONE);
        drv_heap_remove (heap, &things [i].slot);   //  twice: no effect
    }
    cr_assert_eq (drv_heap_size (heap), 50 - 17);
    int64_t last = -1;
    s_thing_t *thing;
    while ((thing = drv_heap_pop (heap))) {
        cr_assert_geq (thing->due, last);
        cr_assert_neq ((thing - things) % 3, 0, "a removed item came back");
        last = thing->due;
    }
    drv_heap_destroy (&heap);
}

Test (heap, destroy_clears_the_slots)
{
    drv_heap_t *heap = drv_heap_new ();
    s_thing_t thing = {.due = 5, .slot = DRV_HEAP_NONE};
    drv_heap_push (heap, &thing, thing.due, &thing.slot);
    cr_assert_eq (thing.slot, 0);
    drv_heap_destroy (&heap);
    cr_assert_eq (thing.slot, DRV_HEAP_NONE);
}
