import StrataCLI
import StrataCore

/// The broker's process around a benchmark run (with --broker-pid): read once before and once
/// after. A broker that keeps its log in memory (Tansu) slows as it grows, so runs compare only on
/// brokers of similar size (docs/performance.md): the benchmarks say so when it is already large.
struct BrokerSize {
    static let largeKiB = 524_288
    let pid: Int32?
    let before: ProcessStats?
    private(set) var after: ProcessStats?

    init(pid: Int32?) {
        self.pid = pid
        before = pid.flatMap { ProcessStats.read(pid: $0) }
        if let b = before, b.rssKiB > Self.largeKiB {
            stderrLine("note: the broker already holds \(b.rssKiB / 1024) MB; its speed drifts as its log grows, so compare runs on a freshly started broker")
        }
    }

    /// Reads the broker again, at the end of the run.
    mutating func finish() { after = pid.flatMap { ProcessStats.read(pid: $0) } }

    /// The broker's CPU-seconds between the two reads (all of it when the first failed).
    var cpuSeconds: Double? { after.map { a in before.map { a.cpuSeconds - $0.cpuSeconds } ?? a.cpuSeconds } }

    /// `broker_rss_mb_before` / `_after` for a result line (empty without both reads).
    var fields: [String: Int] {
        guard let before, let after else { return [:] }
        return ["broker_rss_mb_before": before.rssKiB / 1024, "broker_rss_mb_after": after.rssKiB / 1024]
    }
}
