import Synchronization

/// The current valid-ID filter of one kind, swappable while readers use it.
///
/// A rebuild scans the store for a while; ids applied from the changelog during the scan may be
/// missing from the scan's snapshot, so they are journaled and replayed into the new filter at
/// the swap. Readers take the reference under the mutex (a few nanoseconds, no allocation) and
/// then query the filter without it.
final class FilterSlot: Sendable {
    private struct State {
        var filter: BloomFilter?
        var journal: [String]?
    }

    private let state = Mutex(State())
    /// Serialises rebuilds of this slot.
    let rebuildLock = Mutex(())

    var current: BloomFilter? { state.withLock { $0.filter } }

    func insert(_ id: String) {
        state.withLock { s in
            s.filter?.insert(id)
            s.journal?.append(id)
        }
    }

    func beginRebuild() { state.withLock { $0.journal = [] } }

    func finishRebuild(_ new: BloomFilter) {
        state.withLock { s in
            for id in s.journal ?? [] { new.insert(id) }
            s.filter = new
            s.journal = nil
        }
    }

    func abortRebuild() { state.withLock { $0.journal = nil } }
}
