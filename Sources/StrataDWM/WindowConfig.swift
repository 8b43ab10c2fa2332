import StrataCore

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
    /// Highest event time seen on the source (its watermark input).
    public var maxTs: Int64
    /// The engine's watermark when the checkpoint was taken: decides which windows were still
    /// retained and which were final at that commit.
    public var watermark: Int64

    public init(replayOffset: Int64, maxTs: Int64, watermark: Int64) {
        self.replayOffset = replayOffset
        self.maxTs = maxTs
        self.watermark = watermark
    }

    /// `dwm1:<replayOffset>:<maxTs>:<watermark>` — short enough for commit metadata.
    public var encoded: String { "dwm1:\(replayOffset):\(maxTs):\(watermark)" }

    public init?(encoded: String) {
        let parts = encoded.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "dwm1", let r = Int64(parts[1]), let t = Int64(parts[2]),
              let w = Int64(parts[3]) else { return nil }
        self.init(replayOffset: r, maxTs: t, watermark: w)
    }

    public var description: String { encoded }
}
