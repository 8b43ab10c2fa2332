import Foundation

/// Event-time progress of the `ods.raw` partitions, carried through the split into the
/// micro-queues (docs/time-semantics.md, "Watermarks through the split").
///
/// Each micro-queue partition merges every `ods.raw` partition in whatever order the split read
/// them, so its own order says nothing reliable about event time. The split therefore tells the
/// dwm job, inside the same transactions as the data, how far each raw partition has got:
/// - every routed record carries a **stamp** (header `strata.src`): the raw partition it came
///   from and the highest `ts` of that partition up to and including the record. A record is late
///   exactly when it is late against its own partition's order, whatever the read speed.
/// - **markers** (header `strata.wm`, null key, sent to every micro-queue partition) carry the
///   same progress for every raw partition the split instance owns, and whether it is idle, so a
///   micro-queue partition that receives no data from some raw partition still learns its progress.
public enum SourceProgress {
    public static let stampHeader = "strata.src"
    public static let markerHeader = "strata.wm"
    /// Highest `ts` the window arithmetic accepts; larger values do not move progress.
    public static let maxTs: Int64 = 1 << 60

    /// The stamp of one routed record: 12 bytes, raw partition (UInt32) then max ts (Int64), big-endian.
    public struct Stamp: Sendable, Equatable, BitwiseCopyable {
        public var partition: Int32
        /// Highest ts of the raw partition up to and including this record (Int64.min: none yet).
        public var maxTs: Int64

        public init(partition: Int32, maxTs: Int64) {
            self.partition = partition
            self.maxTs = maxTs
        }

        public static let size = 12

        /// Writes the 12 bytes into `out` (at least `size` bytes).
        @inline(__always)
        public func write(to out: UnsafeMutableRawBufferPointer) {
            out.storeBytes(of: UInt32(bitPattern: partition).bigEndian, toByteOffset: 0, as: UInt32.self)
            out.storeBytes(of: UInt64(bitPattern: maxTs).bigEndian, toByteOffset: 4, as: UInt64.self)
        }

        @inline(__always)
        public init?(_ bytes: UnsafeRawBufferPointer) {
            guard bytes.count == Self.size else { return nil }
            partition = Int32(bitPattern: UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
            maxTs = Int64(bitPattern: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt64.self)))
        }

        public var bytes: [UInt8] {
            var b = [UInt8](repeating: 0, count: Self.size)
            b.withUnsafeMutableBytes { write(to: $0) }
            return b
        }
    }

    /// One raw partition's progress in a marker.
    public struct PartitionProgress: Sendable, Equatable {
        public var partition: Int32
        public var maxTs: Int64
        /// No record for longer than the split's idle timeout: it stops holding the watermark back.
        public var idle: Bool

        public init(partition: Int32, maxTs: Int64, idle: Bool) {
            self.partition = partition
            self.maxTs = maxTs
            self.idle = idle
        }
    }

    /// A watermark marker: JSON, so a consumer of the micro-queues that does not know it sees an
    /// object without `event_id` and drops it (`{"strata_watermark":{"raw_partitions":4,
    /// "progress":[[0,1795219200000,0],…]}}`, each entry partition, max ts, idle 0/1).
    public struct Marker: Sendable, Equatable {
        /// Partition count of `ods.raw`: a reader waits to hear from all of them.
        public var rawPartitions: Int
        public var progress: [PartitionProgress]

        public init(rawPartitions: Int, progress: [PartitionProgress]) {
            self.rawPartitions = rawPartitions
            self.progress = progress
        }

        public var encoded: [UInt8] {
            let entries = progress.map { "[\($0.partition),\($0.maxTs),\($0.idle ? 1 : 0)]" }.joined(separator: ",")
            return Array("{\"strata_watermark\":{\"raw_partitions\":\(rawPartitions),\"progress\":[\(entries)]}}".utf8)
        }

        public init?(_ bytes: UnsafeRawBufferPointer) {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
                  let body = obj["strata_watermark"] as? [String: Any],
                  let n = (body["raw_partitions"] as? NSNumber)?.intValue, n > 0,
                  let list = body["progress"] as? [[NSNumber]] else { return nil }
            var progress: [PartitionProgress] = []
            for e in list {
                guard e.count == 3 else { return nil }
                progress.append(PartitionProgress(partition: e[0].int32Value, maxTs: e[1].int64Value, idle: e[2].intValue != 0))
            }
            self.init(rawPartitions: n, progress: progress)
        }
    }
}
