import Synchronization

/// Follows a consumer's assignment from its rebalance callbacks (which run inside `poll`), so the
/// polling loop can notice changes between polls.
public final class AssignmentTracker: Sendable {
    private struct State { var count = 0; var changedAt: ContinuousClock.Instant?; var joined = false }
    private let state = Mutex(State())

    public init() {}

    public func apply(_ event: RebalanceEvent) {
        state.withLock { s in
            switch event {
            case .assigned(let p): s.count += p.count; s.changedAt = .now; s.joined = true
            case .revoked(let p): s.count = max(0, s.count - p.count); s.changedAt = .now
            case .failed: break
            }
        }
    }

    public var hasPartitions: Bool { state.withLock { $0.count > 0 } }

    /// An assignment was received (possibly empty: more members than partitions). Bounded runs
    /// count idle time from then on, so a member left without partitions also finishes.
    public var hasJoined: Bool { state.withLock { $0.joined } }

    /// When the assignment last changed, once; nil when it has not changed since the last call.
    public func takeChange() -> ContinuousClock.Instant? {
        state.withLock { s in defer { s.changedAt = nil }; return s.changedAt }
    }
}
