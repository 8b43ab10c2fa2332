import CRdKafka

/// An error from librdkafka, with the flags its transactional API needs to decide what to do next.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// librdkafka's `rd_kafka_resp_err_t` raw value (negative values are client-side errors).
    public let code: Int32
    public let message: String
    /// The client instance is unusable (e.g. a fenced transactional producer); restart it.
    public let isFatal: Bool
    /// Retrying the same call may succeed.
    public let isRetriable: Bool
    /// The current transaction must be aborted, then the work redone.
    public let requiresAbort: Bool
    /// What the wrapper was doing when it failed, e.g. "commit_transaction".
    public let operation: String

    public init(code: Int32, message: String, operation: String,
                isFatal: Bool = false, isRetriable: Bool = false, requiresAbort: Bool = false) {
        self.code = code; self.message = message; self.operation = operation
        self.isFatal = isFatal; self.isRetriable = isRetriable; self.requiresAbort = requiresAbort
    }

    init(_ err: rd_kafka_resp_err_t, operation: String, detail: String? = nil) {
        self.init(code: err.rawValue, message: detail ?? String(cString: rd_kafka_err2str(err)),
                  operation: operation)
    }

    /// Takes ownership of an `rd_kafka_error_t` (the transactional API's error type) and frees it.
    init(consuming error: OpaquePointer, operation: String) {
        self.init(code: rd_kafka_error_code(error).rawValue,
                  message: String(cString: rd_kafka_error_string(error)),
                  operation: operation,
                  isFatal: rd_kafka_error_is_fatal(error) != 0,
                  isRetriable: rd_kafka_error_is_retriable(error) != 0,
                  requiresAbort: rd_kafka_error_txn_requires_abort(error) != 0)
        rd_kafka_error_destroy(error)
    }

    /// Configuration problems found before a client exists.
    static func config(_ message: String) -> KafkaError {
        KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue, message: message, operation: "configure")
    }

    public var name: String { String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: code))) }

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
