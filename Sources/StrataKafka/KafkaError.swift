internal import CRdKafka

/// An error from librdkafka, with the flags its transactional API needs to decide what to do next.
/// Callers match `code` against the named cases of `KafkaError.Code`; no C constant leaves this module.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, by name (librdkafka's `rd_kafka_resp_err_t`: negative values are client-side).
    public let code: Code
    public let message: String
    /// The client instance is unusable (e.g. a fenced transactional producer); restart it.
    public let isFatal: Bool
    /// Retrying the same call may succeed.
    public let isRetriable: Bool
    /// The current transaction must be aborted, then the work redone.
    public let requiresAbort: Bool
    /// What the wrapper was doing when it failed, e.g. "commit_transaction".
    public let operation: String

    public init(code: Code, message: String, operation: String,
                isFatal: Bool = false, isRetriable: Bool = false, requiresAbort: Bool = false) {
        self.code = code; self.message = message; self.operation = operation
        self.isFatal = isFatal; self.isRetriable = isRetriable; self.requiresAbort = requiresAbort
    }

    init(_ err: rd_kafka_resp_err_t, operation: String, detail: String? = nil) {
        self.init(code: Code(err), message: detail ?? String(cString: rd_kafka_err2str(err)),
                  operation: operation, isRetriable: Code(err).isRetriable)
    }

    /// Takes ownership of an `rd_kafka_error_t` (the transactional API's error type) and frees it.
    init(consuming error: OpaquePointer, operation: String) {
        self.init(code: Code(rd_kafka_error_code(error)),
                  message: String(cString: rd_kafka_error_string(error)),
                  operation: operation,
                  isFatal: rd_kafka_error_is_fatal(error) != 0,
                  isRetriable: rd_kafka_error_is_retriable(error) != 0,
                  requiresAbort: rd_kafka_error_txn_requires_abort(error) != 0)
        rd_kafka_error_destroy(error)
    }

    /// The same error, asking the caller to abort the transaction and redo its work (what
    /// librdkafka itself says only of the transactional API's errors).
    func requiringAbort(operation: String) -> KafkaError {
        KafkaError(code: code, message: message, operation: operation, isRetriable: false, requiresAbort: true)
    }

    /// A reader stops at records it cannot read (a consumer event whose code `losesRecords`)
    /// rather than read, and commit, past them.
    public init(unreadableRecords event: KafkaError, topic: String, partition: Int32, offset: Int64) {
        self.init(code: event.code, message: "records of \(topic)[\(partition)] from offset \(offset) cannot be read (\(event.message)); "
                  + "stopping rather than reading past them, which would lose them", operation: "consume")
    }

    /// Configuration problems found before a client exists.
    static func config(_ message: String) -> KafkaError {
        KafkaError(code: .invalidArgument, message: message, operation: "configure")
    }

    /// librdkafka's name of the code, e.g. "_PARTITION_EOF", "TOPIC_ALREADY_EXISTS".
    public var name: String { code.name }

    public var description: String {
        var flags: [String] = []
        if isFatal { flags.append("fatal") }
        if isRetriable { flags.append("retriable") }
        if requiresAbort { flags.append("abort required") }
        let suffix = flags.isEmpty ? "" : " [\(flags.joined(separator: ", "))]"
        return "kafka \(operation) failed: \(name): \(message)\(suffix)"
    }
}

@inline(__always)
func check(_ err: rd_kafka_resp_err_t, _ operation: String) throws(KafkaError) {
    if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, operation: operation) }
}

@inline(__always)
func check(_ error: OpaquePointer?, _ operation: String) throws(KafkaError) {
    if let error { throw KafkaError(consuming: error, operation: operation) }
}

extension KafkaError {
    /// librdkafka's error code, with names for the ones Strata's jobs and tools act on.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The raw `rd_kafka_resp_err_t` value (for logs and rare codes without a name here).
        public let rawValue: Int32

        init(_ err: rd_kafka_resp_err_t) { rawValue = err.rawValue }
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// Not an error: the consumer reached the end of a partition (`enable.partition.eof`).
        public static let partitionEOF = Code(RD_KAFKA_RESP_ERR__PARTITION_EOF)
        public static let timedOut = Code(RD_KAFKA_RESP_ERR__TIMED_OUT)
        /// With `auto.offset.reset=error`: a partition's position is out of range, or it has none.
        public static let autoOffsetReset = Code(RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET)
        public static let allBrokersDown = Code(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        public static let transport = Code(RD_KAFKA_RESP_ERR__TRANSPORT)
        public static let queueFull = Code(RD_KAFKA_RESP_ERR__QUEUE_FULL)
        public static let invalidArgument = Code(RD_KAFKA_RESP_ERR__INVALID_ARG)
        public static let unknownTopic = Code(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
        public static let unknownTopicOrPartition = Code(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        public static let topicAlreadyExists = Code(RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        public static let messageTooLarge = Code(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        /// This transactional producer was fenced by a newer instance with the same transactional id.
        public static let fenced = Code(RD_KAFKA_RESP_ERR__FENCED)
        public static let producerFenced = Code(RD_KAFKA_RESP_ERR_PRODUCER_FENCED)
        public static let invalidProducerEpoch = Code(RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH)
        /// A static group member with the same `group.instance.id` took over.
        public static let fencedInstanceId = Code(RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID)
        public static let invalidTransactionState = Code(RD_KAFKA_RESP_ERR__STATE)
        public static let rebalanceInProgress = Code(RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS)
        public static let coordinatorNotAvailable = Code(RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE)
        public static let notCoordinator = Code(RD_KAFKA_RESP_ERR_NOT_COORDINATOR)
        public static let unstableOffsetCommit = Code(RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT)
        public static let requestTimedOut = Code(RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT)
        public static let notLeaderForPartition = Code(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION)
        public static let notEnoughReplicas = Code(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS)
        public static let topicAuthorizationFailed = Code(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
        public static let groupAuthorizationFailed = Code(RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
        /// Records a consumer could not read: a corrupt batch (a broker's answer, or a checksum
        /// that does not match), one that does not decompress, or one the client cannot parse.
        public static let corruptMessage = Code(RD_KAFKA_RESP_ERR_INVALID_MSG)
        public static let badMessage = Code(RD_KAFKA_RESP_ERR__BAD_MSG)
        public static let badCompression = Code(RD_KAFKA_RESP_ERR__BAD_COMPRESSION)
        /// A state topic was not read to its end in time (`TopicSnapshot`).
        public static let snapshotIncomplete = Code(rawValue: -185)

        /// Worth trying the same call again (the transactional API sets its own flag too).
        public var isRetriable: Bool {
            [.timedOut, .allBrokersDown, .transport, .queueFull, .rebalanceInProgress, .coordinatorNotAvailable,
             .notCoordinator, .unstableOffsetCommit].contains(self)
        }

        /// A consumer event saying records could not be read. librdkafka reports it and may read
        /// on past them (a corrupt record); a reader that went on too would lose them silently.
        public var losesRecords: Bool { [.corruptMessage, .badMessage, .badCompression].contains(self) }

        /// The client can never succeed again: another instance owns its identity.
        public var isFencing: Bool { [.fenced, .producerFenced, .invalidProducerEpoch, .fencedInstanceId].contains(self) }

        public var name: String { String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: rawValue))) }
        public var description: String { name }
    }
}
