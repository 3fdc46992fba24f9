/*  drv_heap - a binary min-heap of items by deadline (ms).

    The broker's timed work (delayed retries, lease deadlines) lives here,
    so one timer armed to drv_heap_peek's deadline serves all of it. Each
    item keeps its own position (through a size_t the caller gives), so
    removal from the middle is O(log n). Items with equal deadlines come
    out in the order they were pushed. The heap never owns its items.
*/

#ifndef DRV_HEAP_H_INCLUDED
#define DRV_HEAP_H_INCLUDED

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _drv_heap_t drv_heap_t;

//  Where an item's position lives: the heap keeps *slot up to date, and
//  sets it to DRV_HEAP_NONE when the item leaves.
#define DRV_HEAP_NONE ((size_t) -1)

//  An empty heap, or NULL if out of memory.
drv_heap_t *drv_heap_new (void);

//  Destroy the heap (not its items) and NULL the pointer.
void drv_heap_destroy (drv_heap_t **self_p);

//  Add item due at deadline; slot is where the item's position is kept
//  (it must be DRV_HEAP_NONE). 0, or -1 if out of memory.
int drv_heap_push (drv_heap_t *self, void *item, int64_t deadline, size_t *slot);

//  The item due soonest (its deadline in *deadline), or NULL if empty.
void *drv_heap_peek (drv_heap_t *self, int64_t *deadline);

//  Take the item due soonest, or NULL if empty.
void *drv_heap_pop (drv_heap_t *self);

//  Take the item whose position is in slot out of the heap (nothing if
//  it is not in it).
void drv_heap_remove (drv_heap_t *self, size_t *slot);

//  Items in the heap.
size_t drv_heap_size (drv_heap_t *self);

#endif
