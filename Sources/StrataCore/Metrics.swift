import Foundation
import Synchronization
public import CoreMetrics
public import Prometheus

// Strata's metrics go through swift-metrics (`Counter`, `Gauge`, `Meter`, `Timer` handles) with
// swift-prometheus as the backend. Jobs look their handles up once at start-up and update them
// on the hot path (atomic adds in the backend, no lock); the registry renders the Prometheus text
// exposition for `/metrics` and `--metrics-file`.

public struct MetricsWriteError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "cannot write metrics to \(path): \(reason)" }
}

/// One Prometheus registry with Strata's names and help texts. `shared` is the process's registry;
/// `bootstrap()` points swift-metrics' global factory at it too, so metrics of libraries (Hummingbird's
/// request metrics) land beside Strata's own. Tests make registries of their own.
public final class MetricsRegistry: Sendable {
    public static let shared = MetricsRegistry()

    public let prometheus: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    public init() {
        prometheus = PrometheusCollectorRegistry()
        factory = PrometheusMetricsFactory(registry: prometheus)
    }

    private static let bootstrapped = Atomic<Bool>(false)

    /// Makes `shared` the backend of swift-metrics' global `MetricsSystem`. swift-metrics allows one
    /// bootstrap per process, so later calls do nothing.
    public static func bootstrap() {
        guard bootstrapped.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        MetricsSystem.bootstrap(shared.factory)
    }

    /// The counter for `name` + `labels`, created on first use (the same name and labels give the same series).
    public func counter(_ name: String, help: String, labels: [String: String] = [:]) -> CoreMetrics.Counter {
        let dims = Self.dimensions(labels)
        return CoreMetrics.Counter(label: name, dimensions: dims,
                                   handler: prometheus.makeCounter(descriptor: Self.descriptor(name, help), labels: dims), factory: factory)
    }

    /// A counter of fractional amounts (cumulative seconds: `strata_job_stage_seconds_total`).
    public func secondsCounter(_ name: String, help: String, labels: [String: String] = [:]) -> CoreMetrics.FloatingPointCounter {
        let dims = Self.dimensions(labels)
        return CoreMetrics.FloatingPointCounter(label: name, dimensions: dims,
                                                handler: prometheus.makeCounter(descriptor: Self.descriptor(name, help), labels: dims),
                                                factory: factory)
    }

    /// A value that is set (a level: watermark, lag, resident bytes).
    /// (A non-aggregating `Recorder`, which is what swift-metrics' `Gauge` is.)
    public func gauge(_ name: String, help: String, labels: [String: String] = [:]) -> CoreMetrics.Recorder {
        let dims = Self.dimensions(labels)
        return CoreMetrics.Recorder(label: name, dimensions: dims, aggregate: false,
                                    handler: prometheus.makeGauge(descriptor: Self.descriptor(name, help), labels: dims), factory: factory)
    }

    /// A value that goes up and down by steps (connected viewers).
    public func meter(_ name: String, help: String, labels: [String: String] = [:]) -> CoreMetrics.Meter {
        let dims = Self.dimensions(labels)
        return CoreMetrics.Meter(label: name, dimensions: dims,
                                 handler: prometheus.makeGauge(descriptor: Self.descriptor(name, help), labels: dims), factory: factory)
    }

    /// A duration histogram (seconds in the exposition) with the given bucket bounds.
    public func timer(_ name: String, help: String, labels: [String: String] = [:],
                      buckets: [Duration] = MetricsRegistry.defaultDurationBuckets) -> CoreMetrics.Timer {
        let dims = Self.dimensions(labels)
        return CoreMetrics.Timer(label: name, dimensions: dims,
                                 handler: prometheus.makeDurationHistogram(descriptor: Self.descriptor(name, help), labels: dims, buckets: buckets),
                                 factory: factory)
    }

    /// 1 ms … 30 s: a transaction commit, a store batch, a lookup round trip.
    public static let defaultDurationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
        .seconds(5), .seconds(10), .seconds(30),
    ]

    /// Prometheus text exposition format 0.0.4.
    public func render() -> String { prometheus.emitToString() }

    /// Writes `render()` to `path` atomically (temp file in the same directory + rename), so
    /// node_exporter's textfile collector never reads a half-written file. The temp name does not
    /// end in `.prom`, so the collector ignores it.
    public func writeTextfile(path: String) throws {
        let tmp = "\(path).\(getpid()).tmp"
        do {
            try Data(prometheus.emitToBuffer()).write(to: URL(fileURLWithPath: tmp))
        } catch {
            throw MetricsWriteError(path: path, reason: "\(error)")
        }
        if rename(tmp, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw MetricsWriteError(path: path, reason: reason)
        }
    }

    /// Every sample as `name{k="v",...}` (or bare `name`) -> value, read back from the exposition
    /// (for summaries and tests; labels in the order the series was made with, which is sorted).
    public func snapshot() -> [String: Double] { Self.parse(render()) }

    /// Every sample of a Prometheus text exposition (a `--metrics-file`, a `/metrics` answer) as
    /// `name{k="v",...}` (or bare `name`) -> value; comments and unparsable lines are skipped.
    public static func parse(_ exposition: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            out[String(line[..<space])] = value
        }
        return out
    }

    /// Strata's names are whole (`strata_job_transactions_total`): no namespace or unit parts to join.
    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// Labels sorted by name: one series identity whatever order a call site wrote them in.
    private static func dimensions(_ labels: [String: String]) -> [(String, String)] {
        labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

/// Resident set size of this process in bytes (Linux `/proc/self/statm`; 0 where unavailable).
public func processResidentBytes() -> Int {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = statm.split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
