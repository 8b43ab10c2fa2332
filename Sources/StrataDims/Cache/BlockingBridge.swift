import Dispatch
import Synchronization

/// Runs async work to completion from synchronous code by blocking the calling thread on a
/// semaphore. The work runs on Swift's cooperative pool, so the caller must NOT itself be a
/// cooperative-pool thread (an async task or actor): with every pool thread blocked here, the work
/// could never run. Jobs call the store from their own threads, which is what this is for.
enum BlockingBridge {
    private final class Box<T: Sendable>: Sendable {
        let value = Mutex<Result<T, any Error>?>(nil)
    }

    /// Work that reports its steps (a chunk answered, a statement run): each `tick()` restarts the
    /// caller's stall clock, so a long call that keeps moving is not cut short.
    final class Progress: Sendable {
        fileprivate let ticks = Atomic<Int>(0)
        func tick() { ticks.add(1, ordering: .relaxed) }
    }

    /// Waits for `work` until it has made no progress (no `tick()`) for `stall`; then the work is
    /// abandoned and a `DimensionStoreError.timeout` is thrown. Work that never ticks is simply
    /// bounded by `stall`. The abandoned task is left to finish (or to wait forever for a pool
    /// request that was lost), not cancelled: cancelling a postgres-nio row stream that is being
    /// read when the server cuts the connection could end the process in a precondition of the
    /// library (`RowStreamStateMachine`: "How can we receive a body part…"), seen in 2 of ≈ 11
    /// runs of `PostgresRestartTests` with the cancel and in none of 10 without it.
    static func run<T: Sendable>(stall: Duration, what: @autoclosure () -> String,
                                 _ work: @escaping @Sendable (Progress) async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = Box<T>()
        let progress = Progress()
        let task = Task {
            let result: Result<T, any Error>
            do { result = .success(try await work(progress)) } catch { result = .failure(error) }
            box.value.withLock { $0 = result }
            done.signal()
        }
        // Checked in quarters of the stall bound: a stall is noticed within 1¼ × `stall`.
        let slice = nanoseconds(stall) / 4
        var seen = 0, still = 0
        while done.wait(timeout: .now() + .nanoseconds(max(1, slice))) == .timedOut {
            let now = progress.ticks.load(ordering: .relaxed)
            if now != seen {
                seen = now
                still = 0
            } else {
                still += 1
                if still >= 4 {
                    _ = task   // abandoned, not cancelled: see above
                    throw DimensionStoreError.timeout("\(what()) got no answer for \(stall)")
                }
            }
        }
        return try box.value.withLock { $0! }.get()
    }

    /// `work` bounded as a whole by `timeout`.
    static func run<T: Sendable>(timeout: Duration, what: @autoclosure () -> String,
                                 _ work: @escaping @Sendable () async throws -> T) throws -> T {
        try run(stall: timeout, what: what()) { _ in try await work() }
    }

    private static func nanoseconds(_ d: Duration) -> Int {
        let (s, atto) = d.components
        return Int(clamping: s) &* 1_000_000_000 &+ Int(atto / 1_000_000_000)
    }
}
