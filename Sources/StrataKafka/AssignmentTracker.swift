import Synchronization

/// Follows a consumer's assignment from its rebalance callbacks (which run inside `poll`), so the
/// polling loop can notice changes between polls.
public final class AssignmentTracker: Sendable {
    private struct State { var count = 0; var changedAt: ContinuousClock.Instant?; var settled = false }
    private let state = Mutex(State())

    public init() {}

    public func apply(_ event: RebalanceEvent) {
        state.withLock { s in
            switch event {
            case .assigned(let p): s.count += p.count; s.changedAt = .now; s.settled = true
            // A revoke opens a rebalance; its assignment (possibly empty) closes it, under both
            // the eager and the cooperative protocol.
            case .revoked(let p): s.count = max(0, s.count - p.count); s.changedAt = .now; s.settled = false
            case .failed: break
            }
        }
    }

    public var hasPartitions: Bool { state.withLock { $0.count > 0 } }

    /// The latest rebalance has ended: an assignment was received (possibly empty: more members
    /// than partitions) and no revoke came after it. Bounded runs finish only when settled, so a
    /// member left without partitions also finishes, but a member whose partitions were revoked
    /// because its peers finished waits for its share of them: finishing in between would leave
    /// their last windows unflushed, with no owner left to flush them.
    public var isSettled: Bool { state.withLock { $0.settled } }

    /// When the assignment last changed, once; nil when it has not changed since the last call.
    public func takeChange() -> ContinuousClock.Instant? {
        state.withLock { s in defer { s.changedAt = nil }; return s.changedAt }
    }
}
