import Dispatch
import StrataKafka
import Synchronization

/// Ends a transaction (its offsets, then the commit: librdkafka waits for every record's ack
/// first) on a thread of its own, so the job's thread reads and transforms the next records
/// meanwhile. One transaction at a time: `wait()` before anything else touches the producer.
final class CommitWorker: Sendable {
    private let queue = DispatchQueue(label: "strata.commit")
    private let running = DispatchGroup()
    private let outcome = Mutex<Result<Void, KafkaError>?>(nil)

    /// Starts `end`; its result is kept for `wait()`.
    func start(_ end: @escaping @Sendable () throws(KafkaError) -> Void) {
        running.enter()
        queue.async { [self] in
            let r: Result<Void, KafkaError>
            do throws(KafkaError) { try end(); r = .success(()) } catch { r = .failure(error) }
            outcome.withLock { $0 = r }
            running.leave()
        }
    }

    /// Blocks until no end is running; returns the result of the one that finished since the
    /// last call (nil: none was started).
    @discardableResult
    func wait() -> Result<Void, KafkaError>? {
        running.wait()
        return outcome.withLock { o in defer { o = nil }; return o }
    }

    /// Blocks until no end is running, leaving its result for `wait()`: for the rebalance
    /// callback, which must not let partitions go while their offsets may still commit.
    func quiesce() { running.wait() }
}
