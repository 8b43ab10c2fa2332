internal import CRdKafka
import Logging
import Synchronization

/// What librdkafka's callbacks report back to Swift. One per client; its address is the client's
/// opaque pointer, so callbacks (on librdkafka's or the polling thread) can find it.
final class ClientState: Sendable {
    let logger: Logger
    /// Delivery reports (producer).
    let delivered = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let firstDeliveryError = Mutex<KafkaError?>(nil)
    /// Client-level errors reported through error_cb; fatal ones make the client unusable.
    let fatalError = Mutex<KafkaError?>(nil)
    /// Rebalance handling (consumer); set before the client starts, then only read.
    let rebalance = Mutex<(@Sendable (RebalanceEvent) -> Void)?>(nil)
    /// The group uses incremental (cooperative) rebalancing; fixed by the configuration.
    let cooperative = Atomic<Bool>(false)
    /// Per-message delivery reports (producer), with the token given to `produce`; fixed at creation.
    let onDelivery: (@Sendable (UInt, KafkaError?) -> Void)?

    init(logger: Logger, onDelivery: (@Sendable (UInt, KafkaError?) -> Void)? = nil) {
        self.logger = logger
        self.onDelivery = onDelivery
    }

    static func from(_ opaque: UnsafeMutableRawPointer?) -> ClientState? {
        guard let opaque else { return nil }
        return Unmanaged<ClientState>.fromOpaque(opaque).takeUnretainedValue()
    }
}

/// Owns an `rd_kafka_t` and the state its callbacks write to.
final class KafkaClient: @unchecked Sendable {
    let handle: OpaquePointer
    let state: ClientState
    private let stateRef: Unmanaged<ClientState>

    init(type: rd_kafka_type_t, config: KafkaConfig, logger: Logger,
         configure: (OpaquePointer) -> Void = { _ in },
         onDelivery: (@Sendable (UInt, KafkaError?) -> Void)? = nil) throws(KafkaError) {
        try Librdkafka.requireSupportedVersion()
        let conf = try config.makeNative()
        let state = ClientState(logger: logger, onDelivery: onDelivery)
        let ref = Unmanaged.passRetained(state)
        rd_kafka_conf_set_opaque(conf, ref.toOpaque())
        rd_kafka_conf_set_log_cb(conf, kafkaLogCallback)
        rd_kafka_conf_set_error_cb(conf, kafkaErrorCallback)
        configure(conf)
        var errstr = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            ref.release()
            let detail = errstr.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw KafkaError.config(detail)
        }
        self.handle = rk
        self.state = state
        self.stateRef = ref
    }

    deinit {
        rd_kafka_destroy(handle)
        stateRef.release()
    }

    var name: String { String(cString: rd_kafka_name(handle)) }

    /// Serves queued callbacks (delivery reports, errors, logs).
    @discardableResult
    func poll(timeoutMs: Int32) -> Int32 { rd_kafka_poll(handle, timeoutMs) }

    func throwIfFatal() throws(KafkaError) {
        if let e = state.fatalError.withLock({ $0 }) { throw e }
    }

    /// Cluster metadata for one topic or all; the caller gets Swift values, the C struct is freed.
    func metadata(topic: String?, timeoutMs: Int32) throws(KafkaError) -> [TopicMetadata] {
        var md: UnsafePointer<rd_kafka_metadata>?
        var rkt: OpaquePointer?
        if let topic { rkt = rd_kafka_topic_new(handle, topic, nil) }
        defer { if let rkt { rd_kafka_topic_destroy(rkt) } }
        try check(rd_kafka_metadata(handle, topic == nil ? 1 : 0, rkt, &md, timeoutMs), "metadata")
        guard let md else { return [] }
        defer { rd_kafka_metadata_destroy(md) }
        var out: [TopicMetadata] = []
        for i in 0..<Int(md.pointee.topic_cnt) {
            let t = md.pointee.topics[i]
            out.append(TopicMetadata(name: String(cString: t.topic), partitions: Int(t.partition_cnt),
                                     error: t.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(t.err, operation: "metadata")))
        }
        return out
    }
}

public struct TopicMetadata: Sendable {
    public let name: String
    public let partitions: Int
    /// e.g. UNKNOWN_TOPIC_OR_PART when the topic does not exist.
    public let error: KafkaError?
}

private let kafkaLogCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    rk, level, fac, buf in
    guard let rk, let state = ClientState.from(rd_kafka_opaque(rk)) else { return }
    // syslog levels: 0-3 error, 4 warning, 5-6 info/notice, 7 debug.
    let lvl: Logger.Level = level <= 3 ? .error : level == 4 ? .warning : level <= 6 ? .info : .debug
    state.logger.log(level: lvl, "\(buf.map { String(cString: $0) } ?? "")",
                     metadata: ["facility": "\(fac.map { String(cString: $0) } ?? "")", "client": "\(String(cString: rd_kafka_name(rk)))"])
}

private let kafkaErrorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    rk, err, reason, opaque in
    guard let state = ClientState.from(opaque) else { return }
    let code = rd_kafka_resp_err_t(rawValue: err)
    let text = reason.map { String(cString: $0) } ?? ""
    if code == RD_KAFKA_RESP_ERR__FATAL, let rk {
        var buf = [CChar](repeating: 0, count: 512)
        let orig = rd_kafka_fatal_error(rk, &buf, buf.count)
        let detail = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let e = KafkaError(code: KafkaError.Code(orig), message: detail, operation: "client", isFatal: true)
        state.fatalError.withLock { if $0 == nil { $0 = e } }
        state.logger.error("librdkafka fatal error", metadata: ["error": "\(e)"])
    } else {
        // Transient errors (broker down, all brokers down) are retried by librdkafka itself.
        state.logger.warning("librdkafka error", metadata: ["code": "\(String(cString: rd_kafka_err2name(code)))", "reason": "\(text)"])
    }
}
