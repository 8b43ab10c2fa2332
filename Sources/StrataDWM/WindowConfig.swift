public import StrataCore

/// The time and column settings of the minute row-to-column windows (DESIGN.md, "Time and
/// correctness semantics").
public struct WindowConfig: Sendable, Equatable {
    /// One metric column per action, in this order (topology's `actions`).
    public var actions: [String]
    /// The action whose `duration_ms` values add up to `play_ms` (nil or absent: play_ms stays 0).
    public var playAction: String?
    /// Per source, watermark = highest ts seen − outOfOrdernessMs.
    public var outOfOrdernessMs: Int64
    /// A final window still takes corrections while watermark ≤ window end + allowedLatenessMs.
    public var allowedLatenessMs: Int64
    /// Wall-clock time without records after which a source stops holding the watermark back.
    public var idleTimeoutMs: Int64
    /// Window length; the contract is one minute.
    public let windowMs: Int64 = 60_000
    /// When a window turns final, its DWS finals go out in that collect and its DWM finals in the
    /// next one (`dwmFinalMark` lags the watermark by one collect): a minute's few DWS rows do not
    /// wait for its every DWM row. Off: both in the same collect.
    public var dwsFinalsFirst = false
    /// With `dwsFinalsFirst`: a collect publishes the DWM finals it owes a part at a time (the
    /// minute's contents split into `WindowEngine.finalParts` by a stable hash of their id) until
    /// about this many rows are out, and the next collects go on with the rest. A minute's million
    /// DWM finals then no longer hold one transaction open for seconds while the next minute's
    /// early rows wait behind it. 0: all of them in one collect.
    public var dwmFinalsPerCollect = 0
    /// Every source is an ods.raw partition the job reads itself (no split in between). Lateness is
    /// then decided as the split's stamp would: by the source's own highest ts up to and including
    /// the record (over every record that parses, counted or not), so the same input gives the
    /// same late events with or without the split. Idleness is the job's wall clock, as for any
    /// unstamped source: it reads the partition itself.
    public var rawInput = false

    public init(actions: [String], playAction: String? = "play", outOfOrdernessMs: Int64 = 5_000,
                allowedLatenessMs: Int64 = 120_000, idleTimeoutMs: Int64 = 30_000) {
        self.actions = actions
        self.playAction = playAction
        self.outOfOrdernessMs = outOfOrdernessMs
        self.allowedLatenessMs = allowedLatenessMs
        self.idleTimeoutMs = idleTimeoutMs
    }

    public init(topology: Topology, outOfOrdernessMs: Int64 = 5_000, allowedLatenessMs: Int64 = 120_000,
                idleTimeoutMs: Int64 = 30_000) {
        self.init(actions: topology.actions, outOfOrdernessMs: outOfOrdernessMs,
                  allowedLatenessMs: allowedLatenessMs, idleTimeoutMs: idleTimeoutMs)
    }
}

/// One input of the engine: a partition of a micro-queue. `topic` is the caller's index of the
/// micro-queue (e.g. its action's position in the topology); records of one source must be applied
/// in offset order.
public struct Source: Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var topic: Int
    public var partition: Int

    public init(topic: Int, partition: Int) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)/\(partition)" }
}

/// What the job stores with a source's committed position (e.g. as Kafka offset-commit metadata)
/// so a restarted engine can rebuild the state that position's transaction left behind.
public struct SourceCheckpoint: Sendable, Equatable, CustomStringConvertible {
    /// Re-read the source from here (inclusive) up to the committed position in restore mode.
    public var replayOffset: Int64
    /// Highest event time seen on the source's unstamped records (its own watermark input). With
    /// `WindowConfig.rawInput`: the highest ts *before* `replayOffset`, so the replay rebuilds each
    /// record's own progress exactly.
    public var maxTs: Int64
    /// The engine's watermark when the checkpoint was taken: decides which windows were still
    /// retained and which were final at that commit.
    public var watermark: Int64
    /// The engine's `dwmFinalMark` at the commit: windows ending at or before it had their DWM
    /// finals published (equal to `watermark` unless DWS finals go first).
    public var dwmFinalMark: Int64
    /// The oldest window whose DWM finals were partly out at the commit (its end; `Int64.min`:
    /// none) and how many of its `WindowEngine.finalParts` were (see `dwmFinalsPerCollect`).
    public var dwmPartialEnd: Int64
    public var dwmPartsOut: Int
    /// Partition count of ods.raw announced by the split's markers (0: none seen).
    public var rawPartitions: Int
    /// Progress of each upstream ods.raw partition heard of on this source, at the commit.
    public var upstream: [SourceProgress.PartitionProgress]

    public init(replayOffset: Int64, maxTs: Int64, watermark: Int64, dwmFinalMark: Int64? = nil,
                dwmPartialEnd: Int64 = .min, dwmPartsOut: Int = 0, rawPartitions: Int = 0,
                upstream: [SourceProgress.PartitionProgress] = []) {
        self.replayOffset = replayOffset
        self.maxTs = maxTs
        self.watermark = watermark
        self.dwmFinalMark = dwmFinalMark ?? watermark
        self.dwmPartialEnd = dwmPartialEnd
        self.dwmPartsOut = dwmPartsOut
        self.rawPartitions = rawPartitions
        self.upstream = upstream
    }

    /// `dwm4:<replayOffset>:<maxTs>:<watermark>:<dwmFinalMark>:<dwmPartialEnd>:<dwmPartsOut>:<rawPartitions>:<p>,<maxTs>,<idle>;…`
    /// (`dwm3:` without the partial window, `dwm2:` also without the mark and `dwm1:` without
    /// the last three fields are still read: their DWM finals went out a minute at a time, or with
    /// the DWS finals).
    public var encoded: String {
        let u = upstream.map { "\($0.partition),\($0.maxTs),\($0.idle ? 1 : 0)" }.joined(separator: ";")
        return "dwm4:\(replayOffset):\(maxTs):\(watermark):\(dwmFinalMark):\(dwmPartialEnd):\(dwmPartsOut):\(rawPartitions):\(u)"
    }

    public init?(encoded: String) {
        let parts = encoded.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 4, let r = Int64(parts[1]), let t = Int64(parts[2]), let w = Int64(parts[3]) else { return nil }
        switch parts[0] {
        case "dwm1" where parts.count == 4:
            self.init(replayOffset: r, maxTs: t, watermark: w)
        case "dwm2" where parts.count == 6, "dwm3" where parts.count == 7, "dwm4" where parts.count == 9:
            let mark = parts[0] == "dwm2" ? w : Int64(parts[4])
            var partialEnd = Int64.min, partsOut = 0
            if parts[0] == "dwm4" {
                guard let e = Int64(parts[5]), let n = Int(parts[6]), (0...WindowEngine.finalParts).contains(n) else { return nil }
                partialEnd = e
                partsOut = n
            }
            let rest = parts.suffix(2)
            guard let mark, let n = Int(rest.first!) else { return nil }
            var upstream: [SourceProgress.PartitionProgress] = []
            for e in rest.last!.split(separator: ";") {
                let f = e.split(separator: ",")
                guard f.count == 3, let p = Int32(f[0]), let ts = Int64(f[1]), let idle = Int(f[2]) else { return nil }
                upstream.append(SourceProgress.PartitionProgress(partition: p, maxTs: ts, idle: idle != 0))
            }
            self.init(replayOffset: r, maxTs: t, watermark: w, dwmFinalMark: mark, dwmPartialEnd: partialEnd,
                      dwmPartsOut: partsOut, rawPartitions: n, upstream: upstream)
        default:
            return nil
        }
    }

    public var description: String { encoded }
}
