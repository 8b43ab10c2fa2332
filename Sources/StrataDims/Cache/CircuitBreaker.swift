import Synchronization

/// Skips Redis for a while after it failed, so an outage costs one failed attempt per interval
/// instead of a connect timeout (and reconnect backoff) on every lookup.
///
/// Closed (healthy): every call may use Redis. After a failure it is open for `openFor`; then the
/// next caller becomes the single probe (half-open) while others keep skipping; the probe's
/// success closes it, its failure opens it again.
final class CircuitBreaker: Sendable {
    private struct State {
        var failing = false
        var openUntil: UInt64 = 0
        var probing = false
    }

    private let state = Mutex(State())
    let openForNanos: UInt64

    init(openFor: Duration) { openForNanos = openFor.nanoseconds }

    /// Whether this call may use Redis. A `true` must be followed by `succeeded()` or `failed()`.
    func allow(now: UInt64 = monotonicNanos()) -> Bool {
        state.withLock { s in
            if !s.failing { return true }
            if now < s.openUntil || s.probing { return false }
            s.probing = true
            return true
        }
    }

    /// Returns true when this success ends an outage.
    @discardableResult
    func succeeded() -> Bool {
        state.withLock { s in
            let recovered = s.failing
            s.failing = false
            s.probing = false
            return recovered
        }
    }

    /// Returns true when this failure starts an outage (the first failure after healthy calls).
    @discardableResult
    func failed(now: UInt64 = monotonicNanos()) -> Bool {
        state.withLock { s in
            let started = !s.failing
            s.failing = true
            s.probing = false
            s.openUntil = now &+ openForNanos
            return started
        }
    }

    var isOpen: Bool { state.withLock { $0.failing } }
}
