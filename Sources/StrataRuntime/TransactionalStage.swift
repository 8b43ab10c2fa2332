public import StrataKafka

/// What the loop asks of every job's transform: it sees the records the loop polls and says when
/// the work consumed so far should be committed. The loop owns everything else (membership,
/// polling, cadence, offsets, aborts, idleness, stop); see docs/architecture.md. A job implements
/// one of the two refinements below, by where its output goes.
public protocol LoopStage: AnyObject {
    /// The owned partitions changed (the first assignment included): reload state for `owned`
    /// and say where reading resumes. Partitions without a seek continue at the group's offset.
    func restore(owned: [TopicPartitionOffset], consumer: KafkaConsumer) throws -> Restore
    /// One poll's records in partition order (consumer errors and end-of-partition events removed).
    /// They stay valid until the next poll, or, when a transaction follows this poll, until that
    /// transaction has committed or aborted: a stage that needs them longer copies them.
    func consume(_ records: [KafkaMessage]) throws
    /// The consumer reached the current end of a partition (`enable.partition.eof`).
    func partitionEnded(topic: String, partition: Int32)
    /// After every poll (e.g. pause or resume partitions); a thrown error ends the run.
    func afterPoll(consumer: KafkaConsumer) throws
    /// Whether to commit now (a Kafka transaction, or a durable write followed by the offsets).
    func wantsTransaction(_ tick: Tick) -> Bool
    /// Work for the transaction that should not hold it open (e.g. dimension lookups).
    func beforeTransaction(_ tick: Tick) throws
    /// The transaction committed.
    func committed(_ tick: Tick)
    /// The transaction was aborted (its records are discarded by the broker): how to redo the work.
    func aborted() -> Rewind
    /// Input is held back on purpose (e.g. partitions paused): the job is not idle.
    var holdsInput: Bool { get }
    /// Once, before `prepare`: the loop's stage clock, for the stage to lap finer stages of its
    /// own inside the loop's calls (`StageClock`); the loop's lap after the call gets the rest.
    func attach(clock: StageClock)
}

/// A stage whose output is Kafka records: each transaction's records and the consumer offsets
/// they cover commit together (`send_offsets_to_transaction`), so a crash publishes both or neither.
public protocol TransactionalStage: LoopStage {
    /// Once, before the first poll (topic handles, partition counts).
    func prepare(producer: KafkaProducer, consumer: KafkaConsumer) throws
    /// Inside the open transaction: produce this transaction's records.
    func produce(into producer: KafkaProducer, tick: Tick) throws
    /// After the loop ended without an error (finished or stopped), between transactions: records
    /// the loop publishes in one more transaction of their own, without offsets.
    func sealRecords() -> [(topic: String, key: [UInt8], value: [UInt8])]
    /// The stage reads on while its last transaction ends: the loop polls and calls `consume`
    /// (and `afterPoll`, `wantsTransaction`) before `committed` or `aborted` of the transaction
    /// produced last, which must then account for what that transaction covered, not for what
    /// was consumed since. Nothing else of the stage runs until the transaction has ended.
    var overlapsCommit: Bool { get }
}

/// A stage whose output lives outside Kafka (archive files, a database table): `write` makes
/// everything consumed since the last commit durable, then the loop commits the consumer offsets.
/// A crash between the two delivers those records again, so `write` must be idempotent (files
/// named by their first offset and replaced whole, upserts that keep the highest revision).
public protocol DurableStage: LoopStage {
    /// Once, before the first poll.
    func prepare(consumer: KafkaConsumer) throws
    /// Durably store what was consumed since the last commit (fsync, a committed store transaction).
    /// An error ends the run: the job restarts from the committed offsets.
    func write(_ tick: Tick) throws
}

extension LoopStage {
    public func partitionEnded(topic: String, partition: Int32) {}
    public func afterPoll(consumer: KafkaConsumer) {}
    public func beforeTransaction(_ tick: Tick) throws {}
    public var holdsInput: Bool { false }
    public func attach(clock: StageClock) {}
}

extension TransactionalStage {
    public func prepare(producer: KafkaProducer, consumer: KafkaConsumer) throws {}
    public func sealRecords() -> [(topic: String, key: [UInt8], value: [UInt8])] { [] }
    public var overlapsCommit: Bool { false }
}

extension DurableStage {
    public func prepare(consumer: KafkaConsumer) throws {}
    /// Nothing is aborted: a failed write ends the run.
    public func aborted() -> Rewind { .restore }
}

/// Where reading resumes after an assignment change or a `.restore` rewind.
public struct Restore {
    /// Partitions to reposition; the loop drops the records it polled before (they come again).
    public var seeks: [TopicPartitionOffset]
    /// Positions already accounted for although reading restarts below them (a checkpoint's
    /// committed position above its replay offset): what the next transaction commits at least.
    public var positions: [TopicPartitionOffset]

    /// Not ready yet (e.g. state still being read in the background): the loop pauses the owned
    /// partitions, keeps polling (the group membership stays alive) and asks again after each
    /// poll; the records polled meanwhile come again after the ready restore's seeks, which must
    /// then position every owned partition.
    public var pending = false

    public init(seeks: [TopicPartitionOffset] = [], positions: [TopicPartitionOffset] = []) {
        self.seeks = seeks
        self.positions = positions
    }

    public static var notYet: Restore {
        var r = Restore()
        r.pending = true
        return r
    }
}

extension Restore {
    /// Every owned partition back to the group's committed offset (its first record where the
    /// group has none, `TopicPartitionOffset.first`): for stages that hold uncommitted work across
    /// polls and drop it on an assignment change, so it is read again from where it was committed.
    public static func atCommitted(_ owned: [TopicPartitionOffset], consumer: KafkaConsumer) throws -> Restore {
        guard !owned.isEmpty else { return Restore() }
        return atCommitted(try consumer.committed(owned))
    }

    /// As ``atCommitted(_:consumer:)``, for a stage that has asked for the committed offsets already.
    public static func atCommitted(_ committed: [TopicPartitionOffset]) -> Restore {
        Restore(seeks: committed.map {
            TopicPartitionOffset(topic: $0.topic, partition: $0.partition, offset: $0.offset >= 0 ? $0.offset : TopicPartitionOffset.first)
        })
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
    /// The last poll returned a full batch: more input is waiting (a backlog, or input that came
    /// in during the previous transaction).
    public let backlogged: Bool
    /// When the loop last read a record (nil: none yet).
    public let lastRecordAt: ContinuousClock.Instant?

    public init(now: ContinuousClock.Instant, inputPaused: Bool, finishing: Bool, backlogged: Bool = false,
                lastRecordAt: ContinuousClock.Instant? = nil) {
        self.now = now
        self.inputPaused = inputPaused
        self.finishing = finishing
        self.backlogged = backlogged
        self.lastRecordAt = lastRecordAt
    }

    /// Nothing was read for at least `quiet`: a backlog is read to its end, or the input paused.
    public func inputQuiet(for quiet: Duration) -> Bool {
        inputPaused && lastRecordAt.map { now - $0 >= quiet } ?? false
    }
}
