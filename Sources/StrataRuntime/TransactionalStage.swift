public import StrataKafka

/// A job's transform, plugged into `TransactionalLoop`: it sees the records the loop polls and,
/// when it asks for one, fills a transaction whose consumer offsets the loop adds and commits.
/// The loop owns everything else (membership, polling, cadence, offsets, aborts, idleness, stop);
/// see docs/architecture.md.
public protocol TransactionalStage: AnyObject {
    /// Once, before the first poll (topic handles, partition counts).
    func prepare(producer: KafkaProducer, consumer: KafkaConsumer) throws
    /// The owned partitions changed (the first assignment included): reload state for `owned`
    /// and say where reading resumes. Partitions without a seek continue at the group's offset.
    func restore(owned: [TopicPartitionOffset], consumer: KafkaConsumer) throws -> Restore
    /// One poll's records in partition order (consumer errors and end-of-partition events removed).
    /// They stay valid until the next transaction has committed or aborted.
    func consume(_ records: [KafkaMessage]) throws
    /// The consumer reached the current end of a partition (`enable.partition.eof`).
    func partitionEnded(topic: String, partition: Int32)
    /// After every poll (e.g. pause or resume partitions).
    func afterPoll(consumer: KafkaConsumer)
    /// Whether to run a transaction now.
    func wantsTransaction(_ tick: Tick) -> Bool
    /// Work for the transaction that should not hold it open (e.g. dimension lookups).
    func beforeTransaction(_ tick: Tick) throws
    /// Inside the open transaction: produce this transaction's records.
    func produce(into producer: KafkaProducer, tick: Tick) throws
    /// The transaction committed.
    func committed(_ tick: Tick)
    /// The transaction was aborted (its records are discarded by the broker): how to redo the work.
    func aborted() -> Rewind
    /// Input is held back on purpose (e.g. partitions paused): the job is not idle.
    var holdsInput: Bool { get }
}

extension TransactionalStage {
    public func prepare(producer: KafkaProducer, consumer: KafkaConsumer) throws {}
    public func partitionEnded(topic: String, partition: Int32) {}
    public func afterPoll(consumer: KafkaConsumer) {}
    public func beforeTransaction(_ tick: Tick) throws {}
    public var holdsInput: Bool { false }
}

/// Where reading resumes after an assignment change or a `.restore` rewind.
public struct Restore {
    /// Partitions to reposition; the loop drops the records it polled before (they come again).
    public var seeks: [TopicPartitionOffset]
    /// Positions already accounted for although reading restarts below them (a checkpoint's
    /// committed position above its replay offset): what the next transaction commits at least.
    public var positions: [TopicPartitionOffset]

    public init(seeks: [TopicPartitionOffset] = [], positions: [TopicPartitionOffset] = []) {
        self.seeks = seeks
        self.positions = positions
    }
}

/// How to redo the work of an aborted transaction.
public enum Rewind: Sendable {
    /// Read again every record consumed since the last commit (the stage restored its own state).
    case uncommitted
    /// Rebuild from the stage's checkpoints, as after a new assignment.
    case restore
}

/// The loop's state at a decision point.
public struct Tick: Sendable {
    public let now: ContinuousClock.Instant
    /// The last poll returned no records.
    public let inputPaused: Bool
    /// `--until-idle` elapsed: the last transaction before the loop ends.
    public let finishing: Bool

    public init(now: ContinuousClock.Instant, inputPaused: Bool, finishing: Bool) {
        self.now = now
        self.inputPaused = inputPaused
        self.finishing = finishing
    }
}
