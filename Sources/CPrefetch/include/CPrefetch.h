#ifndef STRATA_CPREFETCH_H
#define STRATA_CPREFETCH_H

/// Asks the CPU to start bringing the cache line at `p` in for a read, without waiting for it
/// (Swift has no prefetch of its own). A hint: `p` need not be valid to dereference.
static inline void strata_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#endif
