import Foundation

/// Lets one transactional producer at a time end a transaction (commit, abort, or the init that
/// ends what a predecessor left open), among every producer of every process that names the same
/// lock file (`STRATA_COMMIT_LOCK`).
///
/// A workaround for Tansu 0.6, Strata's local broker: its coordinator ends a transaction in steps
/// (state, then one marker per partition, then settling every transaction that overlaps it on a
/// partition). When two producers' ends overlap on a partition, one can settle the other while
/// that one is still writing its markers; the markers written after that leave a range no later
/// end settles, and the partitions' last stable offset stops there for good: read_committed
/// readers (restores, downstream jobs, subscribers) wait forever, though every commit succeeded.
/// `KafkaWrapperTests.testOverlappingCommitsOfSeveralProducersAllBecomeVisible` shows it.
/// Kafka has no such race; leave the variable unset there.
///
/// The lock is an `flock` on the file, taken on a descriptor opened for each end, so threads of
/// one process exclude each other as processes do, and a killed process releases it.
public struct TransactionEndLock: Sendable, Equatable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The lock named by `STRATA_COMMIT_LOCK`, or none when it is unset or empty.
    public static let fromEnvironment: TransactionEndLock? = {
        guard let p = ProcessInfo.processInfo.environment["STRATA_COMMIT_LOCK"], !p.isEmpty else { return nil }
        return TransactionEndLock(path: p)
    }()

    /// Runs `body`, the transactional call `operation`, holding the lock.
    func holding<T>(_ operation: String, _ body: () throws(KafkaError) -> T) throws(KafkaError) -> T {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot open", operation) }
        // Closing the descriptor releases the lock.
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw failure("cannot lock", operation) }
        }
        return try body()
    }

    private func failure(_ what: String, _ operation: String) -> KafkaError {
        KafkaError(code: .invalidArgument, message: "\(what) the transaction end lock \(path) (STRATA_COMMIT_LOCK): \(String(cString: strerror(errno)))",
                   operation: operation)
    }
}
