// Size and memory introspection of a WindowEngine (for metrics and the RSS budget).

public struct MemoryEstimate: Sendable, Equatable {
    public var windows = 0
    public var cells = 0
    public var contentsPerMinute = 0
    /// Bytes allocated by the engine's own buffers and tables (capacities, not counts).
    public var bytes = 0

    public var bytesPerCell: Double { cells == 0 ? 0 : Double(bytes) / Double(cells) }
}

extension WindowEngine {
    public var openWindows: Int { windows.count }

    /// Start (epoch ms) of each retained window, ascending, with its final flag.
    public var windowStates: [(minute: Int64, isFinal: Bool)] { windows.map { ($0.start, $0.isFinal) } }

    public var cellCount: Int { windows.reduce(0) { $0 + $1.cells.count } }

    public func memoryEstimate() -> MemoryEstimate {
        var m = MemoryEstimate()
        m.windows = windows.count
        m.bytes = contents.allocatedBytes + strategies.allocatedBytes
        for w in windows {
            m.cells += w.cells.count
            m.contentsPerMinute += w.totals.count
            m.bytes += w.allocatedBytes
        }
        return m
    }
}
