internal import CRdKafka
public import Logging
import Synchronization

/// Partitions gained or lost in a consumer-group rebalance. Delivered on the polling thread,
/// inside `poll`, before the assignment changes (revoked) or right after it (assigned).
public enum RebalanceEvent: Sendable {
    case assigned([TopicPartitionOffset])
    case revoked([TopicPartitionOffset])
    case failed(KafkaError)
}

/// A librdkafka consumer: group membership with manual commits (or manual assignment without a
/// group), rebalance callbacks, pause/resume and hold/release, `read_committed` by default.
/// Use it from one thread at a time, as librdkafka's consumer API requires.
public final class KafkaConsumer {
    let client: KafkaClient
    private let queue: OpaquePointer
    private var closed = false

    /// `onRebalance` runs on the polling thread inside `poll`.
    public init(config: KafkaConfig, logger: Logger = Logger(label: "strata.kafka.consumer"),
                onRebalance: (@Sendable (RebalanceEvent) -> Void)? = nil) throws(KafkaError) {
        var config = config
        let grouped = config.groupId != nil
        // librdkafka's consumer queue exists only with a group.id; a reader that assigns partitions
        // by hand gets a private one that never joins (only subscribe joins) and never commits.
        if !grouped { config.groupId = "strata-reader-\(UInt64.random(in: 0...UInt64.max))" }
        client = try KafkaClient(type: RD_KAFKA_CONSUMER, config: config, logger: logger) { conf in
            if grouped { rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback) }
        }
        client.state.rebalance.withLock { $0 = onRebalance }
        // Decided from the configuration once: asking librdkafka (rd_kafka_rebalance_protocol) from
        // inside the rebalance callback deadlocks when the callback runs within consumer_close.
        let strategy = config["partition.assignment.strategy"] ?? ""
        client.state.cooperative.store(strategy.contains("cooperative"), ordering: .relaxed)
        // Route logs, errors and rebalances through the consumer queue that `poll` serves.
        rd_kafka_poll_set_consumer(client.handle)
        queue = rd_kafka_queue_get_consumer(client.handle)
    }

    deinit {
        close()
        rd_kafka_queue_destroy(queue)
    }

    /// Joins the group and subscribes to `topics`.
    public func subscribe(_ topics: [String]) throws(KafkaError) {
        let list = topics.map { TopicPartitionOffset(topic: $0, partition: RD_KAFKA_PARTITION_UA, offset: 0) }.makeNativeList()
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try check(rd_kafka_subscribe(client.handle, list), "subscribe")
    }

    /// Reads exactly these partitions from these offsets, without group management.
    public func assign(_ partitions: [TopicPartitionOffset]) throws(KafkaError) {
        let list = partitions.makeNativeList()
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try check(rd_kafka_assign(client.handle, list), "assign")
    }

    public func assignment() throws(KafkaError) -> [TopicPartitionOffset] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        try check(rd_kafka_assignment(client.handle, &list), "assignment")
        defer { if let list { rd_kafka_topic_partition_list_destroy(list) } }
        return [TopicPartitionOffset](native: list)
    }

    /// Up to `maxMessages` messages (and error events, see `KafkaMessage.error`), waiting at most
    /// `timeoutMs`. The messages' bytes live as long as the batch.
    public func poll(maxMessages: Int = 1000, timeoutMs: Int32 = 100) throws(KafkaError) -> KafkaMessageBatch {
        try client.throwIfFatal()
        let batch = KafkaMessageBatch(capacity: maxMessages)
        let n = rd_kafka_consume_batch_queue(queue, timeoutMs, batch.messages, maxMessages)
        if n < 0 { throw KafkaError(rd_kafka_last_error(), operation: "consume") }
        batch.count = n
        return batch
    }

    /// Commits `offsets` (next offsets to read) synchronously.
    public func commit(_ offsets: [TopicPartitionOffset]) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let list = offsets.makeNativeList()
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try check(rd_kafka_commit(client.handle, list, 0), "commit")
        if let e = firstPartitionError(list, "commit") { throw e }
    }

    /// The group's committed offsets for `partitions` (`TopicPartitionOffset.invalid` if none).
    public func committed(_ partitions: [TopicPartitionOffset], timeoutMs: Int32 = 10_000) throws(KafkaError) -> [TopicPartitionOffset] {
        let list = partitions.makeNativeList()
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try check(rd_kafka_committed(client.handle, list, timeoutMs), "committed")
        return [TopicPartitionOffset](native: list)
    }

    /// This consumer's positions for `partitions`: the offset after the last record handed to the
    /// application, moved on past transaction markers and aborted records it skipped
    /// (`TopicPartitionOffset.invalid` before anything was read). Local: no broker round trip.
    public func position(_ partitions: [TopicPartitionOffset]) throws(KafkaError) -> [TopicPartitionOffset] {
        let list = partitions.makeNativeList()
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try check(rd_kafka_position(client.handle, list), "position")
        return [TopicPartitionOffset](native: list)
    }

    /// Whether the partition holds records this consumer has not handed to the application yet,
    /// from what it knows locally: the high watermark of the last fetch response that covered the
    /// partition, against the position. nil when either is not known yet (nothing fetched, or
    /// nothing read). No broker round trip. The high watermark counts records of transactions
    /// still open, which a `read_committed` reader cannot have yet.
    public func hasUnreadRecords(topic: String, partition: Int32) -> Bool? {
        var low: Int64 = 0, high: Int64 = 0
        guard rd_kafka_get_watermark_offsets(client.handle, topic, partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR,
              high >= 0, let list = rd_kafka_topic_partition_list_new(1) else { return nil }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_topic_partition_list_add(list, topic, partition)
        guard rd_kafka_position(client.handle, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        let position = list.pointee.elems[0].offset
        return position >= 0 ? high > position : nil
    }

    /// Moves the fetch positions; used to rewind after an aborted transaction.
    public func seek(_ offsets: [TopicPartitionOffset], timeoutMs: Int32 = 10_000) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let list = offsets.makeNativeList()
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try check(rd_kafka_seek_partitions(client.handle, list, timeoutMs), "seek")
        if let e = firstPartitionError(list, "seek") { throw e }
    }

    public func pause(_ partitions: [TopicPartitionOffset]) throws(KafkaError) {
        let list = partitions.makeNativeList()
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try check(rd_kafka_pause_partitions(client.handle, list), "pause")
    }

    public func resume(_ partitions: [TopicPartitionOffset]) throws(KafkaError) {
        let list = partitions.makeNativeList()
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try check(rd_kafka_resume_partitions(client.handle, list), "resume")
    }

    /// Stops handing out `partitions`' records without dropping them, unlike `pause`: their
    /// partition queues stop forwarding into the consumer queue, so what was fetched for them
    /// waits there and fetching stops once `queued.min.messages` wait (librdkafka's
    /// per-partition queues). Records already in the consumer queue still come.
    /// Once held, a partition's forwarding is the caller's for good: librdkafka no longer
    /// forwards it when it is assigned again, so release it after every assignment.
    public func hold(_ partitions: [TopicPartitionOffset]) throws(KafkaError) {
        try forward(partitions, to: nil)
    }

    /// Hands out `partitions`' records again, those held first (in their offset order).
    public func release(_ partitions: [TopicPartitionOffset]) throws(KafkaError) {
        try forward(partitions, to: queue)
    }

    private func forward(_ partitions: [TopicPartitionOffset], to target: OpaquePointer?) throws(KafkaError) {
        for p in partitions {
            guard let pq = rd_kafka_queue_get_partition(client.handle, p.topic, p.partition) else {
                throw KafkaError(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, operation: target == nil ? "hold" : "release")
            }
            rd_kafka_queue_forward(pq, target)
            rd_kafka_queue_destroy(pq)
        }
    }

    /// Partition counts from cluster metadata (for manual assignment of whole topics).
    public func partitionCount(topic: String, timeoutMs: Int32 = 10_000) throws(KafkaError) -> Int {
        let md = try client.metadata(topic: topic, timeoutMs: timeoutMs)
        guard let t = md.first else { throw KafkaError(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, operation: "metadata") }
        if let e = t.error { throw e }
        return t.partitions
    }

    /// For each partition, the earliest offset whose message timestamp is at or after `timestampMs`
    /// (the broker's ListOffsets by time); `TopicPartitionOffset.end` where no such message exists yet.
    /// The answer is a start position for `assign`, so a reader seeks to a time instead of
    /// filtering everything before it.
    public func offsetsForTimes(topic: String, partitions: Int, timestampMs: Int64,
                                timeoutMs: Int32 = 10_000) throws(KafkaError) -> [TopicPartitionOffset] {
        let list = (0..<partitions).map { TopicPartitionOffset(topic: topic, partition: Int32($0), offset: timestampMs) }.makeNativeList()
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try check(rd_kafka_offsets_for_times(client.handle, list, timeoutMs), "offsets_for_times \(topic)")
        if let e = firstPartitionError(list, "offsets_for_times") { throw e }
        return [TopicPartitionOffset](native: list).map { p in
            p.offset < 0 ? TopicPartitionOffset(topic: p.topic, partition: p.partition, offset: TopicPartitionOffset.end) : p
        }
    }

    /// Leaves the group (revoking partitions through the rebalance callback). Idempotent.
    /// The partition's low and high watermark offsets as the broker reports them to this client
    /// (with `read_committed`, the high one is the last stable offset).
    public func watermarks(topic: String, partition: Int32, timeoutMs: Int32 = 10_000) throws(KafkaError) -> (low: Int64, high: Int64) {
        var low: Int64 = 0, high: Int64 = 0
        try check(rd_kafka_query_watermark_offsets(client.handle, topic, partition, &low, &high, timeoutMs), "query watermarks \(topic)[\(partition)]")
        return (low, high)
    }

    public func close() {
        guard !closed else { return }
        closed = true
        _ = rd_kafka_consumer_close(client.handle)
    }

    /// The group membership the records polled so far were read under (member id, generation):
    /// what a transaction's offsets are sent with when another thread sends them
    /// (``KafkaProducer/sendOffsets(_:metadata:timeoutMs:)``).
    public func groupMetadata() throws(KafkaError) -> ConsumerGroupMetadata {
        guard let meta = rd_kafka_consumer_group_metadata(client.handle) else {
            throw KafkaError(RD_KAFKA_RESP_ERR__STATE, operation: "consumer_group_metadata")
        }
        return ConsumerGroupMetadata(handle: meta)
    }
}

/// A snapshot of a consumer's group membership (librdkafka's `rd_kafka_consumer_group_metadata_t`),
/// immutable, so it may be handed to the thread that sends a transaction's offsets.
public final class ConsumerGroupMetadata: @unchecked Sendable {
    let handle: OpaquePointer

    init(handle: OpaquePointer) { self.handle = handle }

    deinit { rd_kafka_consumer_group_metadata_destroy(handle) }
}

/// Messages from one `poll`; owns them and frees them when released.
public final class KafkaMessageBatch {
    let messages: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>
    public internal(set) var count: Int = 0

    init(capacity: Int) {
        messages = .allocate(capacity: Swift.max(capacity, 1))
    }

    deinit {
        for i in 0..<count { rd_kafka_message_destroy(messages[i]) }
        messages.deallocate()
    }

    public var isEmpty: Bool { count == 0 }

    public subscript(i: Int) -> KafkaMessage {
        precondition(i >= 0 && i < count)
        return KafkaMessage(ptr: messages[i]!)
    }
}

extension KafkaMessageBatch: RandomAccessCollection {
    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
}

/// A view of one consumed message. Valid only while its `KafkaMessageBatch` is alive.
/// Topic names remembered by librdkafka's topic handle: per-record code gets a message's topic
/// without building a String (an allocation) for every record.
public struct TopicNames {
    private var names: [OpaquePointer: String] = [:]
    public init() {}

    public mutating func of(_ message: KafkaMessage) -> String {
        guard let rkt = message.ptr.pointee.rkt else { return "" }
        if let name = names[rkt] { return name }
        let name = String(cString: rd_kafka_topic_name(rkt))
        names[rkt] = name
        return name
    }
}

public struct KafkaMessage {
    let ptr: UnsafeMutablePointer<rd_kafka_message_t>

    /// Set for error events (e.g. unknown topic), which carry no record.
    public var error: KafkaError? {
        let err = ptr.pointee.err
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        let detail = ptr.pointee.payload.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) }
        return KafkaError(err, operation: "consume", detail: detail)
    }
    /// For an error event saying records could not be read (`KafkaError.Code.losesRecords`),
    /// throws the error every reader stops with, naming topic, partition and offset.
    public func throwIfRecordsLost() throws(KafkaError) {
        guard let e = error, e.code.losesRecords else { return }
        throw KafkaError(unreadableRecords: e, topic: topic, partition: partition, offset: offset)
    }
    /// The topic name, built as a new String on each call; per-record code uses `TopicNames`.
    public var topic: String { ptr.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "" }
    public var partition: Int32 { ptr.pointee.partition }
    public var offset: Int64 { ptr.pointee.offset }
    /// Whether `other` comes from the same topic and partition, by librdkafka's topic handle (one
    /// per topic and client): no name is built.
    @inline(__always)
    public func isSameTopicPartition(as other: KafkaMessage) -> Bool {
        ptr.pointee.rkt == other.ptr.pointee.rkt && ptr.pointee.partition == other.ptr.pointee.partition
    }
    public var key: UnsafeRawBufferPointer? {
        ptr.pointee.key.map { UnsafeRawBufferPointer(start: $0, count: ptr.pointee.key_len) }
    }
    /// Zero-copy view of the value; empty for an empty or null value.
    public var value: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: ptr.pointee.payload, count: ptr.pointee.payload == nil ? 0 : ptr.pointee.len)
    }
    public var timestampMs: Int64 { rd_kafka_message_timestamp(ptr, nil) }

    /// The last header named `name`, copied.
    public func header(_ name: String) -> [UInt8]? { headerView(name).map { Array($0) } }

    /// The last header named `name`, without copying: valid while the message's batch is alive.
    /// Nil when absent; an empty buffer for a header without a value.
    @inline(__always)
    public func headerView(_ name: String) -> UnsafeRawBufferPointer? {
        var hdrs: OpaquePointer?
        guard rd_kafka_message_headers(ptr, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return nil }
        return Self.last(name, in: hdrs)
    }

    /// Calls `body` with the last header named `name` (nil when absent; empty for a header without
    /// a value), parsed for this call and freed when it returns. `headerView` leaves librdkafka's
    /// parsed list (three small allocations) on the message until its batch is destroyed, ten
    /// thousand of them freed at once; a stamp read per record reuses the same few blocks instead.
    @inline(__always)
    public func withHeader<R>(_ name: String, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        var hdrs: OpaquePointer?
        guard rd_kafka_message_detach_headers(ptr, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return body(nil) }
        defer { rd_kafka_headers_destroy(hdrs) }
        return body(Self.last(name, in: hdrs))
    }

    /// The last header named `name` in a parsed list: nil when absent, empty without a value.
    @inline(__always)
    private static func last(_ name: String, in hdrs: OpaquePointer) -> UnsafeRawBufferPointer? {
        var val: UnsafeRawPointer?
        var size = 0
        guard rd_kafka_header_get_last(hdrs, name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return UnsafeRawBufferPointer(start: val, count: val == nil ? 0 : size)
    }

    /// All headers, copied, in order.
    public var headers: [(String, [UInt8])] {
        var hdrs: OpaquePointer?
        guard rd_kafka_message_headers(ptr, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return [] }
        var out: [(String, [UInt8])] = []
        var i = 0
        var name: UnsafePointer<CChar>?
        var val: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            out.append((name.map { String(cString: $0) } ?? "", val.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
            i += 1
        }
        return out
    }
}

private let rebalanceCallback: @convention(c) (OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?) -> Void = {
    rk, err, partitions, opaque in
    guard let rk else { return }
    let state = ClientState.from(opaque)
    let handler = state?.rebalance.withLock { $0 }
    let list = [TopicPartitionOffset](native: partitions)
    let cooperative = state?.cooperative.load(ordering: .relaxed) ?? false
    switch err {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        let e: OpaquePointer?
        if cooperative { e = rd_kafka_incremental_assign(rk, partitions) } else {
            let r = rd_kafka_assign(rk, partitions)
            e = nil
            if r != RD_KAFKA_RESP_ERR_NO_ERROR { handler?(.failed(KafkaError(r, operation: "assign"))) }
        }
        if let e { handler?(.failed(KafkaError(consuming: e, operation: "incremental_assign"))) }
        state?.logger.info("partitions assigned", metadata: ["partitions": "\(list.map { "\($0.topic)[\($0.partition)]" }.joined(separator: ","))"])
        handler?(.assigned(list))
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        handler?(.revoked(list))
        if cooperative {
            if let e = rd_kafka_incremental_unassign(rk, partitions) { handler?(.failed(KafkaError(consuming: e, operation: "incremental_unassign"))) }
        } else {
            _ = rd_kafka_assign(rk, nil)
        }
        state?.logger.info("partitions revoked", metadata: ["partitions": "\(list.map { "\($0.topic)[\($0.partition)]" }.joined(separator: ","))"])
    default:
        // Rebalance error: drop the assignment so librdkafka can recover it.
        handler?(.failed(KafkaError(err, operation: "rebalance")))
        _ = rd_kafka_assign(rk, nil)
    }
}
