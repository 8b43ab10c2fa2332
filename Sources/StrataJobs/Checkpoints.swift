import StrataCore
import StrataDWM
import StrataKafka

/// The dwm job's replay points, kept in the checkpoint topic and written inside each transaction
/// (the local broker drops offset-commit metadata, so they cannot ride on the offsets).
/// Record: key `<group>|<topic>|<partition>`, value `<committed position>|<SourceCheckpoint>`.
struct CheckpointRecord: Equatable {
    var topic: String
    var partition: Int32
    var position: Int64
    var checkpoint: SourceCheckpoint

    func key(group: String) -> [UInt8] { Array("\(group)|\(topic)|\(partition)".utf8) }
    var value: [UInt8] { Array("\(position)|\(checkpoint.encoded)".utf8) }

    init(topic: String, partition: Int32, position: Int64, checkpoint: SourceCheckpoint) {
        self.topic = topic; self.partition = partition; self.position = position; self.checkpoint = checkpoint
    }

    init?(key: [UInt8], value: [UInt8], group: String) {
        let k = String(decoding: key, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false)
        let v = String(decoding: value, as: UTF8.self).split(separator: "|", maxSplits: 1)
        guard k.count == 3, k[0] == group, let p = Int32(k[2]), v.count == 2, let pos = Int64(v[0]),
              let cp = SourceCheckpoint(encoded: String(v[1])) else { return nil }
        self.init(topic: String(k[1]), partition: p, position: pos, checkpoint: cp)
    }

    /// Every checkpoint of `group`, oldest first, per `<topic>|<partition>`.
    static func load(topic: String, group: String, instance: String, brokers: String, kafka: [String: String],
                     timeout: Duration = .seconds(60)) throws -> [String: [CheckpointRecord]] {
        let records = try TopicSnapshot.read(topic: topic, brokers: brokers, kafka: kafka,
                                             markerKey: "\(group)|marker|\(instance)", timeout: timeout)
        var all: [String: [CheckpointRecord]] = [:]
        for r in records {
            guard let c = CheckpointRecord(key: r.key, value: r.value, group: group) else { continue }
            all["\(c.topic)|\(c.partition)", default: []].append(c)
        }
        return all
    }

    /// The checkpoint to restore from for a partition whose group offset is `committed`: the one
    /// written with that position (a broker that shows aborted transactions, as the local one
    /// does, also hands back checkpoints of transactions that never committed), else the newest
    /// below it (replaying from an earlier commit republishes identical revisions), else none.
    /// `exact` is false when the choice had to fall back.
    static func select(_ candidates: [CheckpointRecord], committed: Int64?) -> (record: CheckpointRecord?, exact: Bool) {
        // No readable committed offset: a fresh group (no checkpoints either), or the offset fetch
        // failed while a dead member's transaction was still open; then the newest checkpoint.
        guard let committed, committed >= 0 else { return (candidates.last, candidates.isEmpty) }
        if let exact = candidates.last(where: { $0.position == committed }) { return (exact, true) }
        return (candidates.filter { $0.position < committed }.max { $0.position < $1.position }, false)
    }
}
