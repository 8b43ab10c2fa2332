import Foundation
import Synchronization

// A tiny, dependency-free metrics registry rendering the Prometheus text exposition format 0.0.4.
// Jobs keep the Counter/Gauge handles they get at start-up and update them on the hot path
// without locks; only registration and rendering take the registry's mutex.

/// A monotonically increasing integer metric. Increments are lock-free (relaxed atomics).
public final class Counter: Sendable {
    public let name: String
    public let labels: [String: String]
    private let storage = Atomic<Int>(0)

    init(name: String, labels: [String: String]) {
        self.name = name
        self.labels = labels
    }

    public func increment(by amount: Int = 1) {
        precondition(amount >= 0, "counter \(name) can only increase")
        storage.add(amount, ordering: .relaxed)
    }

    public var value: Int { storage.load(ordering: .relaxed) }
}

/// A metric that can go up and down. The Double is kept as its bit pattern in an atomic word.
public final class Gauge: Sendable {
    public let name: String
    public let labels: [String: String]
    private let bits = Atomic<UInt64>(Double(0).bitPattern)

    init(name: String, labels: [String: String]) {
        self.name = name
        self.labels = labels
    }

    public func set(_ v: Double) { bits.store(v.bitPattern, ordering: .relaxed) }

    public func add(_ d: Double) {
        var old = bits.load(ordering: .relaxed)
        while true {
            let new = (Double(bitPattern: old) + d).bitPattern
            let (exchanged, current) = bits.weakCompareExchange(
                expected: old, desired: new, successOrdering: .relaxed, failureOrdering: .relaxed)
            if exchanged { return }
            old = current
        }
    }

    public var value: Double { Double(bitPattern: bits.load(ordering: .relaxed)) }
}

public struct MetricsWriteError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "cannot write metrics to \(path): \(reason)" }
}

public final class MetricsRegistry: Sendable {
    public static let shared = MetricsRegistry()

    private enum Kind: String { case counter, gauge }
    private enum Series {
        case counter(Counter)
        case gauge(Gauge)
        var value: Double {
            switch self {
            case .counter(let c): return Double(c.value)
            case .gauge(let g): return g.value
            }
        }
    }
    private struct Family {
        var kind: Kind
        var help: String
        var series: [String: Series] = [:]   // keyed by the rendered label set, e.g. `{a="1",b="2"}`
    }

    private let families = Mutex<[String: Family]>([:])

    public init() {}

    /// Returns the counter for `name` + `labels`, creating it on first use (same name+labels -> same instance).
    public func counter(_ name: String, help: String, labels: [String: String] = [:]) -> Counter {
        let key = Self.labelKey(labels, metric: name)
        return families.withLock { fams in
            switch Self.series(in: &fams, name: name, help: help, kind: .counter, key: key) {
            case .counter(let c)?: return c
            case .gauge?: preconditionFailure("unreachable: kind checked")
            case nil:
                let c = Counter(name: name, labels: labels)
                fams[name]!.series[key] = .counter(c)
                return c
            }
        }
    }

    /// Returns the gauge for `name` + `labels`, creating it on first use.
    public func gauge(_ name: String, help: String, labels: [String: String] = [:]) -> Gauge {
        let key = Self.labelKey(labels, metric: name)
        return families.withLock { fams in
            switch Self.series(in: &fams, name: name, help: help, kind: .gauge, key: key) {
            case .gauge(let g)?: return g
            case .counter?: preconditionFailure("unreachable: kind checked")
            case nil:
                let g = Gauge(name: name, labels: labels)
                fams[name]!.series[key] = .gauge(g)
                return g
            }
        }
    }

    private static func series(in fams: inout [String: Family], name: String, help: String,
                               kind: Kind, key: String) -> Series? {
        precondition(isValidName(name, allowColon: true), "invalid metric name \(name.debugDescription)")
        if let fam = fams[name] {
            // Registering one name as two types would produce an exposition Prometheus rejects.
            precondition(fam.kind == kind, "metric \(name) already registered as a \(fam.kind.rawValue)")
            return fam.series[key]
        }
        fams[name] = Family(kind: kind, help: help)
        return nil
    }

    /// Prometheus text format 0.0.4: families sorted by name, HELP/TYPE once per family, series sorted by labels.
    public func render() -> String {
        let fams = families.withLock { $0 }
        var out = ""
        for name in fams.keys.sorted() {
            let fam = fams[name]!
            out += "# HELP \(name) \(Self.escapeHelp(fam.help))\n"
            out += "# TYPE \(name) \(fam.kind.rawValue)\n"
            for key in fam.series.keys.sorted() {
                let series = fam.series[key]!
                let value: String
                switch series {
                case .counter(let c): value = String(c.value)
                case .gauge(let g): value = Self.formatValue(g.value)
                }
                out += "\(name)\(key) \(value)\n"
            }
        }
        return out
    }

    /// Writes `render()` to `path` atomically (temp file in the same directory + rename), so
    /// node_exporter's textfile collector never reads a half-written file. The temp name does not
    /// end in `.prom`, so the collector ignores it.
    public func writeTextfile(path: String) throws {
        let tmp = "\(path).\(getpid()).tmp"
        do {
            try Data(render().utf8).write(to: URL(fileURLWithPath: tmp))
        } catch {
            throw MetricsWriteError(path: path, reason: "\(error)")
        }
        if rename(tmp, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw MetricsWriteError(path: path, reason: reason)
        }
    }

    /// Every series as `name{k="v",...}` (or bare `name` without labels) -> current value.
    public func snapshot() -> [String: Double] {
        let fams = families.withLock { $0 }
        var out: [String: Double] = [:]
        for (name, fam) in fams {
            for (key, series) in fam.series { out[name + key] = series.value }
        }
        return out
    }

    // MARK: - Formatting

    /// `{a="1",b="x\"y"}` with keys sorted, or "" for no labels. Doubles as the series identity.
    private static func labelKey(_ labels: [String: String], metric: String) -> String {
        if labels.isEmpty { return "" }
        var s = "{"
        for (i, k) in labels.keys.sorted().enumerated() {
            precondition(isValidName(k, allowColon: false) && !k.hasPrefix("__"),
                         "invalid label name \(k.debugDescription) on metric \(metric)")
            if i > 0 { s += "," }
            s += k + "=\"" + escapeLabelValue(labels[k]!) + "\""
        }
        return s + "}"
    }

    static func escapeLabelValue(_ v: String) -> String {
        var s = ""
        s.reserveCapacity(v.utf8.count)
        for ch in v.unicodeScalars {
            switch ch {
            case "\\": s += "\\\\"
            case "\"": s += "\\\""
            case "\n": s += "\\n"
            default: s.unicodeScalars.append(ch)
            }
        }
        return s
    }

    static func escapeHelp(_ v: String) -> String {
        v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func formatValue(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        // Whole numbers print without ".0" (exactly representable range only).
        if v == v.rounded(), abs(v) < 9.007_199_254_740_992e15 { return String(Int64(v)) }
        return "\(v)"
    }

    private static func isValidName(_ name: String, allowColon: Bool) -> Bool {
        guard let first = name.utf8.first else { return false }
        func ok(_ c: UInt8, first: Bool) -> Bool {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"): return true
            case UInt8(ascii: ":"): return allowColon
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return !first
            default: return false
            }
        }
        return ok(first, first: true) && name.utf8.dropFirst().allSatisfy { ok($0, first: false) }
    }
}

/// Resident set size of this process in bytes (Linux `/proc/self/statm`; 0 where unavailable).
public func processResidentBytes() -> Int {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = statm.split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
