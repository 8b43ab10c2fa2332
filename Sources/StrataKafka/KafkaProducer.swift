internal import CRdKafka
public import Logging
import Synchronization

/// A topic handle, looked up once so the hot path does not resolve topic names per message.
public struct KafkaTopic: @unchecked Sendable {
    let handle: OpaquePointer
    public let name: String
}

/// A librdkafka producer: idempotent by default, batching, delivery reports surfaced as Swift
/// errors from `flush()` (and, when `onDelivery` is given, per message), optional transactions.
/// Thread-safe, as librdkafka's producer is.
public final class KafkaProducer: @unchecked Sendable {
    let client: KafkaClient
    private let topics = Mutex<[String: KafkaTopic]>([:])
    public let isTransactional: Bool
    /// Held while a transaction ends, when set (``TransactionEndLock``).
    public let endLock: TransactionEndLock?

    /// `onDelivery` is called once per message, from the thread that calls `poll()` or `flush()`,
    /// with the `deliveryToken` given to `produce` and nil or the delivery error: what a caller
    /// needs to know that its own messages are acknowledged (`acks` as configured) without
    /// flushing everyone's. It must be quick and must not call back into the producer.
    public init(config: KafkaConfig, logger: Logger = Logger(label: "strata.kafka.producer"),
                endLock: TransactionEndLock? = .fromEnvironment,
                onDelivery: (@Sendable (_ token: UInt, _ error: KafkaError?) -> Void)? = nil) throws(KafkaError) {
        isTransactional = config.transactionalId != nil
        self.endLock = isTransactional ? endLock : nil
        client = try KafkaClient(type: RD_KAFKA_PRODUCER, config: config, logger: logger,
                                 configure: { conf in rd_kafka_conf_set_dr_msg_cb(conf, deliveryReportCallback) },
                                 onDelivery: onDelivery)
    }

    deinit {
        let handles = topics.withLock { Array($0.values) }
        for t in handles { rd_kafka_topic_destroy(t.handle) }
    }

    /// A cached handle for `name`.
    public func topic(_ name: String) -> KafkaTopic {
        topics.withLock { cache in
            if let t = cache[name] { return t }
            let t = KafkaTopic(handle: rd_kafka_topic_new(client.handle, name, nil), name: name)
            cache[name] = t
            return t
        }
    }

    /// Enqueues one message. With `copy: false` librdkafka keeps pointers to `key` and `value`,
    /// which must then stay valid until the message is delivered (after `flush()` or a committed
    /// transaction) — the zero-copy path for forwarding consumed messages.
    /// Waits (serving delivery reports) while librdkafka's queue is full, unless `waitWhenFull` is
    /// false: then a full queue throws `queueFull` at once (for callers with somewhere else to go).
    /// `deliveryToken` comes back in `onDelivery` for this message.
    public func produce(to topic: KafkaTopic, partition: Int32 = TopicPartitionOffset.unassignedPartition,
                        key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?,
                        headers: [(String, [UInt8])] = [], header: (name: String, value: UnsafeRawBufferPointer)? = nil,
                        copy: Bool = true, deliveryToken: UInt = 0, waitWhenFull: Bool = true) throws(KafkaError) {
        while true {
            let err = enqueue(topic: topic, partition: partition, key: key, value: value, headers: headers, header: header,
                              copy: copy, token: deliveryToken)
            guard let err else { return }
            let e = KafkaError(consuming: err, operation: "produce to \(topic.name)")
            guard e.code == .queueFull, waitWhenFull else { throw try refusal(e) }
            try waitForRoom()
        }
    }

    /// The error a refused enqueue throws. librdkafka refuses to produce once the transaction hit
    /// an abortable error (a request timed out, a leader moved mid-batch) and says only "_STATE":
    /// the caller must abort and redo the work, unless the client's error is fatal (thrown here).
    private func refusal(_ e: KafkaError) throws(KafkaError) -> KafkaError {
        guard e.code == .invalidTransactionState, isTransactional else { return e }
        try client.throwIfFatal()
        return e.requiringAbort(operation: e.operation)
    }

    /// librdkafka's queue is full: serve delivery reports for a moment, unless the client failed.
    private func waitForRoom() throws(KafkaError) {
        try client.throwIfFatal()
        client.poll(timeoutMs: 50)
    }

    /// Enqueues `count` messages to `topic`, partitioned by key, in order, with one librdkafka
    /// call per chunk (`rd_kafka_produce_batch`: the topic is locked and the clocks read once per
    /// chunk, not per message) and without copying: every `message(i)` key and value must stay
    /// valid until the messages are delivered (after `flush()` or a committed or aborted
    /// transaction). Waits, serving delivery reports, while librdkafka's queue is full; any other
    /// refusal throws as `produce` does, after the messages before it were enqueued.
    public func produceBatch(to topic: KafkaTopic, count: Int,
                             message: (Int) -> (key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer)) throws(KafkaError) {
        let chunk = 1_024
        var start = 0
        try withUnsafeTemporaryAllocation(of: rd_kafka_message_t.self, capacity: Swift.min(chunk, Swift.max(count, 1))) { (msgs) throws(KafkaError) in
            while start < count {
                let n = Swift.min(msgs.count, count - start)
                for j in 0..<n {
                    let (key, value) = message(start + j)
                    msgs[j] = rd_kafka_message_t()
                    msgs[j].partition = TopicPartitionOffset.unassignedPartition
                    msgs[j].payload = UnsafeMutableRawPointer(mutating: value.baseAddress)
                    msgs[j].len = value.count
                    msgs[j].key = UnsafeMutableRawPointer(mutating: key?.baseAddress)
                    msgs[j].key_len = key?.count ?? 0
                }
                let good = Int(rd_kafka_produce_batch(topic.handle, TopicPartitionOffset.unassignedPartition, 0, msgs.baseAddress, Int32(n)))
                if good == n { start += n; continue }
                // The messages before the first refused one are enqueued; go on from it.
                guard let failed = (0..<n).first(where: { msgs[$0].err != RD_KAFKA_RESP_ERR_NO_ERROR }) else {
                    start += n   // every message of the chunk reported enqueued
                    continue
                }
                start += failed
                let e = KafkaError(msgs[failed].err, operation: "produce to \(topic.name)")
                // A fatal client says so (the batch call gives only a code, not librdkafka's error).
                guard e.code == .queueFull else { try client.throwIfFatal(); throw try refusal(e) }
                try waitForRoom()
            }
        }
    }

    /// Convenience for cold paths: copies key and value.
    public func produce(topic name: String, key: [UInt8]?, value: [UInt8]?, headers: [(String, [UInt8])] = []) throws(KafkaError) {
        let t = topic(name)
        let r: Result<Void, KafkaError> = withOptionalBytes(key) { k in
            value.withOptionalBytes { v in
                Result { () throws(KafkaError) in try produce(to: t, key: k, value: v, headers: headers, copy: true) }
            }
        }
        try r.get()
    }

    private func enqueue(topic: KafkaTopic, partition: Int32, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?,
                         headers: [(String, [UInt8])], header: (name: String, value: UnsafeRawBufferPointer)?,
                         copy: Bool, token: UInt) -> OpaquePointer? {
        var hdrs: OpaquePointer?
        if !headers.isEmpty || header != nil {
            hdrs = rd_kafka_headers_new(headers.count + 1)
            for (name, bytes) in headers {
                bytes.withUnsafeBytes { b in _ = rd_kafka_header_add(hdrs, name, -1, b.baseAddress, b.count) }
            }
            // The single-header form takes a borrowed buffer: no array per message (librdkafka copies it).
            if let (name, b) = header { _ = rd_kafka_header_add(hdrs, name, -1, b.baseAddress, b.count) }
        }
        let count = hdrs == nil ? 6 : 7
        let err = withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: count) { vus -> OpaquePointer? in
            vus.initialize(repeating: rd_kafka_vu_t())
            vus[0].vtype = RD_KAFKA_VTYPE_RKT; vus[0].u.rkt = topic.handle
            vus[1].vtype = RD_KAFKA_VTYPE_PARTITION; vus[1].u.i32 = partition
            vus[2].vtype = RD_KAFKA_VTYPE_KEY
            vus[2].u.mem.ptr = UnsafeMutableRawPointer(mutating: key?.baseAddress); vus[2].u.mem.size = key?.count ?? 0
            vus[3].vtype = RD_KAFKA_VTYPE_VALUE
            vus[3].u.mem.ptr = UnsafeMutableRawPointer(mutating: value?.baseAddress); vus[3].u.mem.size = value?.count ?? 0
            vus[4].vtype = RD_KAFKA_VTYPE_MSGFLAGS; vus[4].u.i = copy ? RD_KAFKA_MSG_F_COPY : 0
            // The token travels as the message's opaque (an integer, never dereferenced).
            vus[5].vtype = RD_KAFKA_VTYPE_OPAQUE; vus[5].u.ptr = UnsafeMutableRawPointer(bitPattern: token)
            if let hdrs { vus[6].vtype = RD_KAFKA_VTYPE_HEADERS; vus[6].u.headers = hdrs }
            return rd_kafka_produceva(client.handle, vus.baseAddress, count)
        }
        // On failure the headers were not handed over.
        if err != nil, let hdrs { rd_kafka_headers_destroy(hdrs) }
        return err
    }

    /// Serves delivery reports and other callbacks.
    public func poll(timeoutMs: Int32 = 0) { client.poll(timeoutMs: timeoutMs) }

    /// Drops every message not yet delivered (queued, and the answers to requests in flight) and
    /// waits up to `timeoutMs` for librdkafka to let go of them: after it, no message lent to
    /// the producer (`copy: false`) is read again, so its memory may be freed. For a producer
    /// given up after an error; what it dropped is reported failed.
    public func dropUndelivered(timeoutMs: Int32 = 5_000) {
        _ = rd_kafka_purge(client.handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
        _ = rd_kafka_flush(client.handle, timeoutMs)
    }

    /// Messages delivered and failed since the producer started.
    public var deliveryCounts: (delivered: Int, failed: Int) {
        (client.state.delivered.load(ordering: .relaxed), client.state.failed.load(ordering: .relaxed))
    }

    /// Messages waiting in librdkafka (queued, in flight, or awaiting their delivery report).
    public var outstanding: Int { Int(rd_kafka_outq_len(client.handle)) }

    /// Waits until every message is delivered or failed. Throws the first delivery failure seen
    /// since the previous `flush()`, or a timeout.
    public func flush(timeoutMs: Int32 = 30_000) throws(KafkaError) {
        try check(rd_kafka_flush(client.handle, timeoutMs), "flush")
        try client.throwIfFatal()
        if let e = client.state.firstDeliveryError.withLock({ e -> KafkaError? in defer { e = nil }; return e }) {
            throw e
        }
    }

    /// Waits, inside a transaction, until every message enqueued so far is delivered: memory lent
    /// to them (``produceBatch(to:count:message:)``) can then be reused before the transaction
    /// ends. A delivery failure or a timeout fails the transaction, so the error thrown requires
    /// an abort, unless the client's error is fatal.
    public func awaitDelivery(timeoutMs: Int32 = 60_000) throws(KafkaError) {
        do {
            try flush(timeoutMs: timeoutMs)
        } catch let e where !e.isFatal && isTransactional {
            throw e.requiringAbort(operation: "await delivery")
        }
    }

    // MARK: Transactions (requires `transactional.id`)

    /// Ends what an earlier producer of the same `transactional.id` left open: locked as an end.
    public func initTransactions(timeoutMs: Int32 = 30_000) throws(KafkaError) {
        try ending("init_transactions") { () throws(KafkaError) in
            try check(rd_kafka_init_transactions(client.handle, timeoutMs), "init_transactions")
        }
    }

    public func beginTransaction() throws(KafkaError) {
        try check(rd_kafka_begin_transaction(client.handle), "begin_transaction")
    }

    /// Adds the consumer's positions to the open transaction: they commit with it, or not at all.
    /// `offsets` are the next offsets to read (last processed + 1).
    public func sendOffsets(_ offsets: [TopicPartitionOffset], consumer: KafkaConsumer, timeoutMs: Int32 = 30_000) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        try sendOffsets(offsets, metadata: try consumer.groupMetadata(), timeoutMs: timeoutMs)
    }

    /// As ``sendOffsets(_:consumer:timeoutMs:)``, with the membership taken from the consumer
    /// when its records were read: callable from a thread other than the consumer's.
    public func sendOffsets(_ offsets: [TopicPartitionOffset], metadata: ConsumerGroupMetadata, timeoutMs: Int32 = 30_000) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let list = offsets.makeNativeList()
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try check(rd_kafka_send_offsets_to_transaction(client.handle, list, metadata.handle, timeoutMs), "send_offsets_to_transaction")
    }

    /// Flushes and commits. On a `requiresAbort` error, call `abortTransaction()` and redo the work.
    public func commitTransaction(timeoutMs: Int32 = 60_000) throws(KafkaError) {
        // Under the lock, only the end itself: the records' acks are awaited before taking it.
        if endLock != nil { try awaitDelivery(timeoutMs: timeoutMs) }
        try ending("commit_transaction") { () throws(KafkaError) in
            try check(rd_kafka_commit_transaction(client.handle, timeoutMs), "commit_transaction")
        }
        // Delivery failures inside a committed transaction cannot happen (the commit would fail);
        // clear what the reports recorded so a later flush() does not see stale errors.
        client.state.firstDeliveryError.withLock { $0 = nil }
    }

    public func abortTransaction(timeoutMs: Int32 = 60_000) throws(KafkaError) {
        try ending("abort_transaction") { () throws(KafkaError) in
            try check(rd_kafka_abort_transaction(client.handle, timeoutMs), "abort_transaction")
        }
        // librdkafka served the purged messages' reports (it flushes after the purge): their
        // errors must not reach the next transaction's `awaitDelivery()` or a later `flush()`.
        client.state.firstDeliveryError.withLock { $0 = nil }
    }

    private func ending(_ operation: String, _ body: () throws(KafkaError) -> Void) throws(KafkaError) {
        if let endLock { try endLock.holding(operation, body) } else { try body() }
    }

    /// Partition count of a topic, from cluster metadata.
    public func partitionCount(topic: String, timeoutMs: Int32 = 10_000) throws(KafkaError) -> Int {
        let md = try client.metadata(topic: topic, timeoutMs: timeoutMs)
        guard let t = md.first else { throw KafkaError(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, operation: "metadata") }
        if let e = t.error { throw e }
        return t.partitions
    }
}

private let deliveryReportCallback: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = {
    _, msg, opaque in
    guard let msg, let state = ClientState.from(opaque) else { return }
    let token = UInt(bitPattern: msg.pointee._private)
    if msg.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
        state.delivered.add(1, ordering: .relaxed)
        state.onDelivery?(token, nil)
    } else {
        state.failed.add(1, ordering: .relaxed)
        let topic = msg.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
        let e = KafkaError(msg.pointee.err, operation: "deliver to \(topic)")
        state.firstDeliveryError.withLock { if $0 == nil { $0 = e } }
        state.onDelivery?(token, e)
    }
}

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    bytes.withOptionalBytes(body)
}

extension Optional where Wrapped == [UInt8] {
    func withOptionalBytes<R>(_ body: (UnsafeRawBufferPointer?) -> R) -> R {
        switch self {
        case .none: return body(nil)
        case .some(let a): return a.withUnsafeBytes { body($0) }
        }
    }
}
