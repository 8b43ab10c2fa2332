internal import CRdKafka

/// A position in a partition. For commits and `sendOffsets`, `offset` is the next offset to read.
public struct TopicPartitionOffset: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic; self.partition = partition; self.offset = offset
    }

    /// A partition's first record, asked for by its offset (0) rather than as "the beginning":
    /// librdkafka resolves the beginning with the broker's earliest offset, and Tansu 0.6 answers
    /// that with the batch it stored first in time, not the lowest offset. When two producers'
    /// first batches to a partition race, it names the second one, and a reader starting "at the
    /// beginning" never sees the first (tests read published rows that way and missed some). Where
    /// the log no longer starts at 0 (retention, deleted records), the fetch is out of range and
    /// `auto.offset.reset` (earliest in ``KafkaConfig/consumer(bootstrapServers:groupId:clientId:)``)
    /// moves it to the log's start.
    public static let first: Int64 = 0
    public static let end = Int64(RD_KAFKA_OFFSET_END)
    public static let stored = Int64(RD_KAFKA_OFFSET_STORED)
    public static let invalid = Int64(RD_KAFKA_OFFSET_INVALID)
    /// "Any partition": the producer's partitioner picks one from the key.
    public static let unassignedPartition = Int32(RD_KAFKA_PARTITION_UA)

    public var description: String { "\(topic)[\(partition)]@\(offset)" }
}

extension Array where Element == TopicPartitionOffset {
    /// The caller destroys the list.
    func makeNativeList() -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(count))!
        for tp in self {
            rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)!.pointee.offset = tp.offset
        }
        return list
    }

    init(native list: UnsafePointer<rd_kafka_topic_partition_list_t>?) {
        self = []
        guard let list else { return }
        for i in 0..<Int(list.pointee.cnt) {
            let e = list.pointee.elems[i]
            append(TopicPartitionOffset(topic: String(cString: e.topic), partition: e.partition, offset: e.offset))
        }
    }
}

/// Per-partition errors inside a list are reported by some calls instead of a top-level error.
func firstPartitionError(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>, _ operation: String) -> KafkaError? {
    for i in 0..<Int(list.pointee.cnt) where list.pointee.elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR {
        let e = list.pointee.elems[i]
        return KafkaError(e.err, operation: "\(operation) \(String(cString: e.topic))[\(e.partition)]")
    }
    return nil
}
