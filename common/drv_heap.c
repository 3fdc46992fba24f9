/*  drv_heap - a binary min-heap of items by deadline (ms). */

#include "drv_heap.h"

#include <stdlib.h>

typedef struct {
    int64_t deadline;                //  when the item is due
    uint64_t order;                  //  push count: equal deadlines pop FIFO
    void *item;                      //  the caller's, borrowed
    size_t *slot;                    //  where its position is kept
} s_entry_t;

struct _drv_heap_t {
    s_entry_t *entries;              //  the heap array
    size_t size;                     //  entries in use
    size_t capacity;                 //  entries allocated
    uint64_t pushes;                 //  items ever pushed
};

//  Is a due before b: earlier deadline, or pushed first.
static inline bool
s_before (const s_entry_t *a, const s_entry_t *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->order < b->order);
}

drv_heap_t *
drv_heap_new (void)
{
    return (drv_heap_t *) calloc (1, sizeof (drv_heap_t));
}

void
drv_heap_destroy (drv_heap_t **self_p)
{
    drv_heap_t *self = *self_p;
    if (self) {
        for (size_t i = 0; i < self->size; i++)
            *self->entries [i].slot = DRV_HEAP_NONE;
        free (self->entries);
        free (self);
        *self_p = NULL;
    }
}

//  Put entry at index and record its position.
static void
s_place (drv_heap_t *self, size_t index, s_entry_t entry)
{
    self->entries [index] = entry;
    *entry.slot = index;
}

static void
s_sift_up (drv_heap_t *self, size_t index)
{
    s_entry_t entry = self->entries [index];
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (!s_before (&entry, &self->entries [parent]))
            break;
        s_place (self, index, self->entries [parent]);
        index = parent;
    }
    s_place (self, index, entry);
}

static void
s_sift_down (drv_heap_t *self, size_t index)
{
    s_entry_t entry = self->entries [index];
    while (true) {
        size_t child = 2 * index + 1;
        if (child >= self->size)
            break;
        if (child + 1 < self->size
            && s_before (&self->entries [child + 1], &self->entries [child]))
            child++;
        if (!s_before (&self->entries [child], &entry))
            break;
        s_place (self, index, self->entries [child]);
        index = child;
    }
    s_place (self, index, entry);
}

int
drv_heap_push (drv_heap_t *self, void *item, int64_t deadline, size_t *slot)
{
    if (self->size == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 64;
        s_entry_t *entries = (s_entry_t *) realloc (self->entries, capacity * sizeof *entries);
        if (!entries)
            return -1;
        self->entries = entries;
        self->capacity = capacity;
    }
    self->entries [self->size] =
        (s_entry_t) {.deadline = deadline, .order = self->pushes++, .item = item, .slot = slot};
    *slot = self->size++;
    s_sift_up (self, *slot);
    return 0;
}

void *
drv_heap_peek (drv_heap_t *self, int64_t *deadline)
{
    if (!self->size)
        return NULL;
    if (deadline)
        *deadline = self->entries [0].deadline;
    return self->entries [0].item;
}

void
drv_heap_remove (drv_heap_t *self, size_t *slot)
{
    size_t index = *slot;
    if (index == DRV_HEAP_NONE || index >= self->size || self->entries [index].slot != slot)
        return;
    *slot = DRV_HEAP_NONE;
    s_entry_t last = self->entries [--self->size];
    if (index == self->size)
        return;
    s_place (self, index, last);
    if (index > 0 && s_before (&last, &self->entries [(index - 1) / 2]))
        s_sift_up (self, index);
    else
        s_sift_down (self, index);
}

void *
drv_heap_pop (drv_heap_t *self)
{
    if (!self->size)
        return NULL;
    void *item = self->entries [0].item;
    drv_heap_remove (self, self->entries [0].slot);
    return item;
}

size_t
drv_heap_size (drv_heap_t *self)
{
    return self->size;
}
