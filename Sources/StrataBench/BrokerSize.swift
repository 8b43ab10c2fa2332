import StrataCLI
import StrataCore

/// The broker's resident size around a benchmark run (with --broker-pid). A broker that keeps its
/// log in memory (Tansu) slows as it grows, so runs compare only on brokers of similar size
/// (docs/performance.md): the benchmarks say so when the broker is already large.
struct BrokerSize {
    static let largeKiB = 524_288
    let pid: Int32?
    private(set) var beforeMB: Int?

    init(pid: Int32?) {
        self.pid = pid
        guard let pid, let s = ProcessStats.read(pid: pid) else { return }
        beforeMB = s.rssKiB / 1024
        if s.rssKiB > Self.largeKiB {
            stderrLine("note: the broker already holds \(beforeMB!) MB; its speed drifts as its log grows, so compare runs on a freshly started broker")
        }
    }

    /// `broker_rss_mb_before` / `_after` for a result line (empty without a pid).
    func fields() -> [String: Int] {
        guard let pid, let before = beforeMB, let after = ProcessStats.read(pid: pid) else { return [:] }
        return ["broker_rss_mb_before": before, "broker_rss_mb_after": after.rssKiB / 1024]
    }
}
