import Foundation
import Logging
import Synchronization

/// Waits out a dimension store that cannot answer (PostgreSQL restarting, an SQLite database
/// locked past its busy timeout): the query is retried with backoff for up to `limit`, so a job
/// pauses instead of guessing. Only then does the error reach the caller; a job exits on it and
/// its restart resumes from its last commit, so nothing is lost or doubled either way.
final class StoreWait: Sendable {
    let limit: Duration
    let retries: CacheCounter
    let logger: Logger
    /// Whether an outage is in progress (logged once when it starts and once when it ends).
    private let waiting = Atomic<Bool>(false)

    init(limit: Duration, retries: CacheCounter, logger: Logger) {
        self.limit = limit
        self.retries = retries
        self.logger = logger
    }

    func run<T>(_ what: String, _ body: () throws -> T) throws -> T {
        let start = ContinuousClock.now
        var pause = Duration.milliseconds(50)
        while true {
            do {
                let value = try body()
                if waiting.exchange(false, ordering: .relaxed) {
                    logger.info("dimension store answers again", metadata: ["waited_s": "\(Self.format(ContinuousClock.now - start))"])
                }
                return value
            } catch {
                let waited = ContinuousClock.now - start
                guard waited + pause <= limit else {
                    logger.error("dimension store unavailable; giving up", metadata: ["lookup": "\(what)", "waited_s": "\(Self.format(waited))",
                                                                                      "error": "\(error)"])
                    throw error
                }
                if !waiting.exchange(true, ordering: .relaxed) {
                    logger.warning("dimension store unavailable; waiting", metadata: ["lookup": "\(what)", "error": "\(error)",
                                                                                      "limit_s": "\(Self.format(limit))"])
                }
                retries.add(1)
                Thread.sleep(forTimeInterval: Double(pause.nanoseconds) / 1e9)
                pause = min(pause * 2, .seconds(2))
            }
        }
    }

    private static func format(_ d: Duration) -> String { String(format: "%.1f", Double(d.nanoseconds) / 1e9) }
}
