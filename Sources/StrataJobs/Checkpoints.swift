import Foundation
import StrataCore
import Synchronization
import StrataDWM
import StrataKafka

/// Which checkpoints a dwm restore believes (`DWMJob.Options.checkpointTrust`).
public enum CheckpointTrust: String, Sendable, CaseIterable {
    case auto, proven, all
}

/// Which transaction wrote a checkpoint: the engine that wrote it (a fresh id at every rebuild),
/// its transaction count, and whether the transaction advanced an input position. A broker that
/// shows aborted transactions (the local one does) hands back checkpoints of transactions that
/// never committed; the tag lets a restore tell those apart (``CheckpointLog/trusted(committed:)``).
struct CheckpointTag: Hashable, Sendable {
    var writer: String
    var seq: Int
    var advanced: Bool

    /// `t:<writer>:<seq>:<a|n>`
    var encoded: String { "t:\(writer):\(seq):\(advanced ? "a" : "n")" }

    init(writer: String, seq: Int, advanced: Bool) {
        self.writer = writer; self.seq = seq; self.advanced = advanced
    }

    init?(encoded s: Substring) {
        let f = s.split(separator: ":", omittingEmptySubsequences: false)
        guard f.count == 4, f[0] == "t", !f[1].isEmpty, let n = Int(f[2]), f[3] == "a" || f[3] == "n" else { return nil }
        self.init(writer: String(f[1]), seq: n, advanced: f[3] == "a")
    }

    var transaction: String { "\(writer):\(seq)" }
}

/// The dwm job's replay points, kept in the checkpoint topic and written inside each transaction
/// (the local broker drops offset-commit metadata, so they cannot ride on the offsets).
/// Record: key `<group>|<topic>|<partition>`, value `<committed position>|<tag>|<SourceCheckpoint>`
/// (`<committed position>|<SourceCheckpoint>` before tags, still read).
struct CheckpointRecord: Equatable, Sendable {
    var topic: String
    var partition: Int32
    var position: Int64
    var checkpoint: SourceCheckpoint
    var tag: CheckpointTag?

    func key(group: String) -> [UInt8] { Array("\(group)|\(topic)|\(partition)".utf8) }
    var value: [UInt8] {
        Array((tag.map { "\(position)|\($0.encoded)|\(checkpoint.encoded)" } ?? "\(position)|\(checkpoint.encoded)").utf8)
    }
    /// `<topic>|<partition>`: the source it belongs to.
    var source: String { "\(topic)|\(partition)" }

    init(topic: String, partition: Int32, position: Int64, checkpoint: SourceCheckpoint, tag: CheckpointTag? = nil) {
        self.topic = topic; self.partition = partition; self.position = position; self.checkpoint = checkpoint; self.tag = tag
    }

    init?(key: [UInt8], value: [UInt8], group: String) {
        let k = String(decoding: key, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false)
        let v = String(decoding: value, as: UTF8.self).split(separator: "|", maxSplits: 1)
        guard k.count == 3, k[0] == group, let p = Int32(k[2]), v.count == 2, let pos = Int64(v[0]) else { return nil }
        var rest = v[1], tag: CheckpointTag?
        if rest.hasPrefix("t:") {
            let t = rest.split(separator: "|", maxSplits: 1)
            guard t.count == 2, let parsed = CheckpointTag(encoded: t[0]) else { return nil }
            tag = parsed
            rest = t[1]
        }
        guard let cp = SourceCheckpoint(encoded: String(rest)) else { return nil }
        self.init(topic: String(k[1]), partition: p, position: pos, checkpoint: cp, tag: tag)
    }

    /// Key and value of the record that seals `writer`'s transactions below `seq` (written after
    /// its last commit on a clean stop): key `<group>|seal|<writer>`, value `<seq>`.
    static func seal(group: String, writer: String, seq: Int) -> (key: [UInt8], value: [UInt8]) {
        (Array("\(group)|seal|\(writer)".utf8), Array("\(seq)".utf8))
    }

    /// Key of the record a job writes in a transaction it aborts, to learn whether the broker
    /// shows aborted transactions to `read_committed` readers.
    static func probeKey(group: String, instance: String) -> [UInt8] { Array("\(group)|probe|\(instance)".utf8) }

    /// Everything of `group` in the checkpoint topic, in log order.
    static func load(topic: String, group: String, instance: String, brokers: String, kafka: [String: String],
                     timeout: Duration = .seconds(60)) throws -> CheckpointLog {
        let records = try TopicSnapshot.read(topic: topic, brokers: brokers, kafka: kafka,
                                             markerKey: "\(group)|marker|\(instance)", timeout: timeout)
        var log = CheckpointLog()
        let seal = "\(group)|seal|", probe = "\(group)|probe|"
        for r in records {
            if let c = CheckpointRecord(key: r.key, value: r.value, group: group) {
                log.records[c.source, default: []].append(c)
                continue
            }
            let k = String(decoding: r.key, as: UTF8.self)
            if k.hasPrefix(seal), let n = Int(String(decoding: r.value, as: UTF8.self)) {
                let w = String(k.dropFirst(seal.count))
                log.seals[w] = max(log.seals[w] ?? 0, n)
            } else if k.hasPrefix(probe) {
                log.probes.insert(String(decoding: r.value, as: UTF8.self))
            }
        }
        return log
    }

    /// The checkpoint to restore from for a partition whose group offset is `committed`: the
    /// newest written with that position, else the newest below it (replaying from an earlier
    /// commit republishes identical revisions), else none. `exact` is false when the choice had
    /// to fall back.
    static func select(_ candidates: [CheckpointRecord], committed: Int64?) -> (record: CheckpointRecord?, exact: Bool) {
        // No readable committed offset: a fresh group (no checkpoints either), or the offset fetch
        // failed while a dead member's transaction was still open; then the newest checkpoint.
        guard let committed, committed >= 0 else { return (candidates.last, candidates.isEmpty) }
        if let exact = candidates.last(where: { $0.position == committed }) { return (exact, true) }
        var below: CheckpointRecord?
        for c in candidates where c.position < committed && c.position >= (below?.position ?? .min) { below = c }
        return (below, false)
    }
}

/// The checkpoint topic as a restore reads it: the checkpoints per source (`<topic>|<partition>`)
/// in log order, the seals (writer → transactions below this count committed) and the probes seen.
struct CheckpointLog: Sendable {
    var records: [String: [CheckpointRecord]] = [:]
    var seals: [String: Int] = [:]
    var probes: Set<String> = []

    /// The checkpoints that certainly committed, for a broker that shows aborted transactions.
    /// A transaction's checkpoints are trusted when
    /// - the same writer began a later transaction (or sealed past it): it begins one only after
    ///   the previous committed; or
    /// - it advanced an input position and every position it wrote is the group's committed one
    ///   (`committed`, per source): the offsets it sent are the ones that stand.
    /// Left out is a killed writer's last transaction when it only published (finals due by the
    /// clock, no new input): its checkpoints, at the committed positions, may claim finals that
    /// never committed. Restoring from the one before republishes those rows, identical.
    /// Untagged (older) checkpoints are kept as they are. A source left with nothing trusted keeps
    /// all of its checkpoints when the group committed an offset for it (`untrusted` names it):
    /// the broker compacted the history away. With no committed offset it keeps none.
    func trusted(committed: [String: Int64]) -> (records: [String: [CheckpointRecord]], untrusted: [String]) {
        var lastSeq = seals
        var byTransaction: [String: [CheckpointRecord]] = [:]
        for list in records.values {
            for r in list {
                guard let t = r.tag else { continue }
                lastSeq[t.writer] = max(lastSeq[t.writer] ?? -1, t.seq)
                byTransaction[t.transaction, default: []].append(r)
            }
        }
        func known(_ t: CheckpointTag) -> Bool {
            if (lastSeq[t.writer] ?? -1) > t.seq { return true }
            guard t.advanced else { return false }
            return byTransaction[t.transaction, default: []].allSatisfy { committed[$0.source] == $0.position }
        }
        var out: [String: [CheckpointRecord]] = [:]
        var untrusted: [String] = []
        for (source, list) in records {
            let kept = list.filter { $0.tag.map(known) ?? true }
            guard kept.isEmpty && !list.isEmpty else { out[source] = kept; continue }
            // Nothing proven. If the group committed an offset, the broker compacted the history
            // away: all of them stay. If it committed none, none of them committed (a killed
            // first transaction, shown by a broker that shows unfinished ones): none stays, and
            // the source is read from its start, publishing what it reads.
            if let c = committed[source], c < 0 {
                out[source] = []
            } else {
                untrusted.append(source)
                out[source] = list
            }
        }
        return (out, untrusted.sorted())
    }
}

/// A read of the checkpoint topic on a thread of its own, for a restore that keeps the loop polling.
final class CheckpointLoad: @unchecked Sendable {
    let owned: Set<String>
    let started = ContinuousClock.now
    /// When the restore last said it is still waiting (the loop's thread only).
    var lastReport = ContinuousClock.now
    private let result = Mutex<Result<CheckpointLog, any Error>?>(nil)

    init(owned: Set<String>, read: @escaping @Sendable () throws -> CheckpointLog) {
        self.owned = owned
        let thread = Thread { [self] in
            let r = Result { try read() }
            result.withLock { $0 = r }
        }
        thread.name = "strata-checkpoints"
        thread.start()
    }

    /// The read's result once it is over.
    var outcome: Result<CheckpointLog, any Error>? { result.withLock { $0 } }
}
