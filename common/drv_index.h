/*  drv_index - an open-addressing hash index of items that carry their
    own key (the broker's jobs by id, and by client and tag).

    A slot holds only the item's pointer: about 11 to 23 bytes per item
    at the load it keeps (at most 0.7), where a zhashx item with its key
    costs 60 to 110. That is what lets the broker hold a million queued
    jobs within its memory budget (docs/performance.md). The slots start
    on a cache line (64 bytes, eight slots): a hash that puts keys used
    together in neighbouring slots (the broker's job ids) gets them in
    one line. Growing and deleting hash items again (the hash function
    may read a hash the item keeps). Linear probing, deletion by
    backward shift (no tombstones), power-of-two capacity.
    The index never owns its items and never copies keys: the caller
    says how to hash an item and how to match one against a key.
*/

#ifndef DRV_INDEX_H_INCLUDED
#define DRV_INDEX_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _drv_index_t drv_index_t;

//  The hash of an item's key; must not change while the item is indexed.
typedef uint64_t (drv_index_hash_fn) (const void *item);

//  Does item have this key?
typedef bool (drv_index_match_fn) (const void *item, const void *key);

//  An empty index hashing items with hash, or NULL if out of memory.
drv_index_t *drv_index_new (drv_index_hash_fn *hash);

//  Destroy the index (not its items) and NULL the pointer.
void drv_index_destroy (drv_index_t **self_p);

//  Add item. Items with equal keys may coexist; find returns one of
//  them. 0, or -1 if out of memory (the item is not added).
int drv_index_insert (drv_index_t *self, void *item);

//  The item whose key hashes to hash and matches key, or NULL.
void *drv_index_find (drv_index_t *self, uint64_t hash, drv_index_match_fn *match,
                      const void *key);

//  Take this very item (by address) out; false if it was not in.
bool drv_index_remove (drv_index_t *self, const void *item);

//  Walk the items: start with *cursor = 0; each call returns the next
//  item, or NULL at the end. The index must not change during a walk.
void *drv_index_next (drv_index_t *self, size_t *cursor);

//  Items in the index.
size_t drv_index_size (drv_index_t *self);

//  Bytes the index holds (its slot array).
size_t drv_index_memory (drv_index_t *self);

//  Mix a 64-bit value into a well-spread hash (splitmix64's finaliser).
uint64_t drv_index_mix (uint64_t value);

#endif
