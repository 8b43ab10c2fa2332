import Foundation
public import Logging
import Synchronization

/// Waits out a store that cannot answer (PostgreSQL restarting, an SQLite database locked past its
/// busy timeout): the call is retried with backoff for up to `limit`, so a job pauses instead of
/// guessing or failing. Only then does the error reach the caller; a job exits on it and its
/// restart resumes from its last commit, so nothing is lost or doubled either way. Used by the
/// dimension cache's lookups and by the sink's table writes; the calls it retries must be safe to
/// repeat (lookups, upserts that keep the highest revision).
public final class StoreWait: Sendable {
    public let limit: Duration
    /// What is waited for, in the log lines ("dimension store", "warehouse table").
    let subject: String
    let logger: Logger
    private let onRetry: @Sendable () -> Void
    private let retried = Atomic<Int>(0)
    /// Whether an outage is in progress (logged once when it starts and once when it ends).
    private let waiting = Atomic<Bool>(false)

    public init(limit: Duration, subject: String, logger: Logger, onRetry: @escaping @Sendable () -> Void = {}) {
        self.limit = limit
        self.subject = subject
        self.logger = logger
        self.onRetry = onRetry
    }

    /// Calls retried so far.
    public var retries: Int { retried.load(ordering: .relaxed) }

    public func run<T>(_ what: String, _ body: () throws -> T) throws -> T {
        let start = ContinuousClock.now
        var pause = Duration.milliseconds(50)
        while true {
            do {
                let value = try body()
                if waiting.exchange(false, ordering: .relaxed) {
                    logger.info("\(subject) answers again", metadata: ["waited_s": "\(Self.format(ContinuousClock.now - start))"])
                }
                return value
            } catch let e as DimensionStoreError where !e.isTransient {
                logger.error("\(subject) refused the call; not waiting", metadata: ["call": "\(what)", "error": "\(e)"])
                throw e
            } catch {
                let waited = ContinuousClock.now - start
                guard waited + pause <= limit else {
                    logger.error("\(subject) unavailable; giving up", metadata: ["call": "\(what)", "waited_s": "\(Self.format(waited))",
                                                                                "error": "\(error)"])
                    throw error
                }
                if !waiting.exchange(true, ordering: .relaxed) {
                    logger.warning("\(subject) unavailable; waiting", metadata: ["call": "\(what)", "error": "\(error)",
                                                                                "limit_s": "\(Self.format(limit))"])
                }
                retried.add(1, ordering: .relaxed)
                onRetry()
                Thread.sleep(forTimeInterval: Double(pause.nanoseconds) / 1e9)
                pause = min(pause * 2, .seconds(2))
            }
        }
    }

    private static func format(_ d: Duration) -> String { String(format: "%.1f", Double(d.nanoseconds) / 1e9) }
}
