public import StrataCore
import CoreMetrics

/// Every consumed record ends in exactly one bucket: consumed = routed + filtered + deadLettered.
public struct SplitStats: Sendable, Equatable {
    public var consumed = 0
    public var routed: [String: Int] = [:]        // by action
    public var filtered: [String: Int] = [:]      // by reason
    public var deadLettered: [String: Int] = [:]  // by reason

    public init() {}

    public var routedTotal: Int { routed.values.reduce(0, +) }
    public var filteredTotal: Int { filtered.values.reduce(0, +) }
    public var deadLetteredTotal: Int { deadLettered.values.reduce(0, +) }
    public var isBalanced: Bool { consumed == routedTotal + filteredTotal + deadLetteredTotal }

    public mutating func add(_ other: SplitStats) {
        consumed += other.consumed
        routed.merge(other.routed, uniquingKeysWith: +)
        filtered.merge(other.filtered, uniquingKeysWith: +)
        deadLettered.merge(other.deadLettered, uniquingKeysWith: +)
    }

    /// Adds these counts to the process's metrics (called once per committed transaction).
    public func export(to registry: MetricsRegistry = .shared) {
        registry.counter("strata_split_consumed_total", help: "Records consumed from ods.raw and committed").increment(by: consumed)
        for (action, n) in routed {
            registry.counter("strata_split_routed_total", help: "Records routed to a micro-queue", labels: ["action": action]).increment(by: n)
        }
        for (reason, n) in filtered {
            registry.counter("strata_split_filtered_total", help: "Records filtered, by reason", labels: ["reason": reason]).increment(by: n)
        }
        for (reason, n) in deadLettered {
            registry.counter("strata_split_dead_lettered_total", help: "Records sent to ods.dlq, by reason", labels: ["reason": reason]).increment(by: n)
        }
    }

    public var summary: String {
        func fmt(_ d: [String: Int]) -> String { d.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        return "consumed=\(consumed) routed=\(routedTotal) [\(fmt(routed))] filtered=\(filteredTotal) [\(fmt(filtered))] "
            + "dead_lettered=\(deadLetteredTotal) [\(fmt(deadLettered))] balanced=\(isBalanced)"
    }
}
