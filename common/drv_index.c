/*  drv_index - open-addressing hash index; see drv_index.h. */

#include <stdlib.h>
#include <string.h>

#include "drv_index.h"

struct _drv_index_t {
    void **slots;                    //  capacity entries, NULL when free
    size_t capacity;                 //  a power of two
    size_t size;                     //  items held
    drv_index_hash_fn *hash;         //  an item's hash
};

#define S_MIN_CAPACITY 64

//  Slots for capacity items, zeroed, on a cache line's boundary (so
//  that eight slots side by side are one line), or NULL.
static void **
s_slots_new (size_t capacity)
{
    if (capacity > SIZE_MAX / sizeof (void *))
        return NULL;
    void **slots = (void **) aligned_alloc (64, capacity * sizeof (void *));
    if (slots)
        memset (slots, 0, capacity * sizeof (void *));
    return slots;
}

uint64_t
drv_index_mix (uint64_t value)
{
    value ^= value >> 30;
    value *= 0xbf58476d1ce4e5b9ull;
    value ^= value >> 27;
    value *= 0x94d049bb133111ebull;
    value ^= value >> 31;
    return value;
}

drv_index_t *
drv_index_new (drv_index_hash_fn *hash)
{
    drv_index_t *self = (drv_index_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->slots = s_slots_new (S_MIN_CAPACITY);
    if (!self->slots) {
        free (self);
        return NULL;
    }
    self->capacity = S_MIN_CAPACITY;
    self->hash = hash;
    return self;
}

void
drv_index_destroy (drv_index_t **self_p)
{
    drv_index_t *self = *self_p;
    if (self) {
        free (self->slots);
        free (self);
        *self_p = NULL;
    }
}

//  Put item in the first free slot from its home; there is one.
static void
s_place (void **slots, size_t mask, void *item, uint64_t hash)
{
    size_t at = (size_t) hash & mask;
    while (slots [at])
        at = (at + 1) & mask;
    slots [at] = item;
}

static int
s_resize (drv_index_t *self, size_t capacity)
{
    void **slots = s_slots_new (capacity);
    if (!slots)
        return -1;
    for (size_t i = 0; i < self->capacity; i++)
        if (self->slots [i])
            s_place (slots, capacity - 1, self->slots [i], self->hash (self->slots [i]));
    free (self->slots);
    self->slots = slots;
    self->capacity = capacity;
    return 0;
}

int
drv_index_insert (drv_index_t *self, void *item)
{
    //  Keep the load at most 0.7, so probes stay short.
    if ((self->size + 1) * 10 > self->capacity * 7
        && s_resize (self, self->capacity * 2) == -1)
        return -1;
    s_place (self->slots, self->capacity - 1, item, self->hash (item));
    self->size++;
    return 0;
}

void *
drv_index_find (drv_index_t *self, uint64_t hash, drv_index_match_fn *match, const void *key)
{
    size_t mask = self->capacity - 1;
    for (size_t at = (size_t) hash & mask; self->slots [at]; at = (at + 1) & mask)
        if (match (self->slots [at], key))
            return self->slots [at];
    return NULL;
}

bool
drv_index_remove (drv_index_t *self, const void *item)
{
    size_t mask = self->capacity - 1;
    size_t at = (size_t) self->hash (item) & mask;
    while (self->slots [at] && self->slots [at] != item)
        at = (at + 1) & mask;
    if (!self->slots [at])
        return false;
    //  Backward shift: move later items of the run into the hole when
    //  their home is not between the hole and them.
    size_t hole = at;
    for (size_t next = (hole + 1) & mask; self->slots [next]; next = (next + 1) & mask) {
        size_t home = (size_t) self->hash (self->slots [next]) & mask;
        bool stays = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
        if (!stays) {
            self->slots [hole] = self->slots [next];
            hole = next;
        }
    }
    self->slots [hole] = NULL;
    self->size--;
    //  Shrink when an eighth full, so a drained queue gives memory back
    //  (and a run of inserts and removes at the edge cannot thrash).
    if (self->capacity > S_MIN_CAPACITY && self->size * 8 < self->capacity)
        s_resize (self, self->capacity / 2);
    return true;
}

void *
drv_index_next (drv_index_t *self, size_t *cursor)
{
    while (*cursor < self->capacity) {
        void *item = self->slots [(*cursor)++];
        if (item)
            return item;
    }
    return NULL;
}

size_t
drv_index_size (drv_index_t *self)
{
    return self->size;
}

size_t
drv_index_memory (drv_index_t *self)
{
    return self->capacity * sizeof (void *);
}
