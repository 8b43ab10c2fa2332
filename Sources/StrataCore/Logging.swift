public import Foundation
public import Logging
import Synchronization

/// Structured logs on stderr for every command: JSON lines when stderr is not a terminal (for log
/// shippers), a compact human format on a terminal.
public enum StrataLogging {
    public enum Format: String, Sendable, CaseIterable {
        case auto, json, text
    }

    private static let bootstrapped = Atomic<Bool>(false)

    /// Installs the Strata log handler. Env STRATA_LOG_LEVEL and STRATA_LOG_FORMAT override the
    /// arguments. swift-log allows one bootstrap per process, so later calls are ignored (returns false).
    @discardableResult
    public static func bootstrap(level: Logger.Level = .info, format: Format = .auto,
                                 environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard bootstrapped.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return false }

        var problems: [String] = []
        var level = level
        if let raw = environment["STRATA_LOG_LEVEL"], !raw.isEmpty {
            if let l = parseLevel(raw) { level = l } else { problems.append("ignoring STRATA_LOG_LEVEL=\(raw)") }
        }
        var format = format
        if let raw = environment["STRATA_LOG_FORMAT"], !raw.isEmpty {
            if let f = Format(rawValue: raw.lowercased()) { format = f } else { problems.append("ignoring STRATA_LOG_FORMAT=\(raw)") }
        }
        let resolved = resolve(format)
        let finalLevel = level
        LoggingSystem.bootstrap { label in
            var h = StrataLogHandler(label: label, format: resolved)
            h.logLevel = finalLevel
            return h
        }
        if !problems.isEmpty {
            let logger = Logger(label: "strata.logging")
            for p in problems { logger.warning("\(p)", metadata: ["valid": "trace|debug|info|notice|warning|error|critical; auto|json|text"]) }
        }
        return true
    }

    /// `auto` becomes text on a terminal, JSON otherwise.
    public static func resolve(_ format: Format) -> Format {
        guard format == .auto else { return format }
        return isatty(STDERR_FILENO) != 0 ? .text : .json
    }

    static func parseLevel(_ s: String) -> Logger.Level? {
        switch s.lowercased() {
        case "warn": return .warning
        case "err": return .error
        default: return Logger.Level(rawValue: s.lowercased())
        }
    }
}

/// The log handler behind `StrataLogging.bootstrap`; usable directly with an injected sink.
public struct StrataLogHandler: LogHandler {
    public let label: String
    public let format: StrataLogging.Format
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let sink: @Sendable ([UInt8]) -> Void

    /// `format` must be `.json` or `.text` (`.auto` is treated as json). `sink` receives one complete
    /// line including its newline; by default a locked write to stderr so lines never interleave.
    public init(label: String, format: StrataLogging.Format,
                metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider,
                sink: @escaping @Sendable ([UInt8]) -> Void = StrataLogHandler.writeStderr) {
        self.label = label
        self.format = format
        self.metadataProvider = metadataProvider
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let m = event.metadata { merged.merge(m) { _, new in new } }
        if let err = event.error { merged["error"] = .string("\(err)") }
        let now = Date()
        let line = format == .text
            ? Self.textLine(date: now, level: event.level, label: label, message: event.message.description, metadata: merged)
            : Self.jsonLine(date: now, level: event.level, label: label, message: event.message.description, metadata: merged)
        sink(Array(line.utf8))
    }

    // MARK: - Formats

    private static let reservedKeys: Set<String> = ["ts", "level", "label", "msg"]

    /// `{"ts":"2026-11-21T09:47:01.123Z","level":"info","label":"…","msg":"…",<metadata keys sorted>}`
    /// Metadata keys that collide with the fixed ones are written with a leading underscore.
    static func jsonLine(date: Date, level: Logger.Level, label: String, message: String,
                         metadata: Logger.Metadata) -> String {
        var s = "{\"ts\":\"\(rfc3339(date))\",\"level\":\"\(level.rawValue)\",\"label\":"
        JSONString.append(label, to: &s)
        s += ",\"msg\":"
        JSONString.append(message, to: &s)
        for key in metadata.keys.sorted() {
            s += ","
            JSONString.append(reservedKeys.contains(key) ? "_" + key : key, to: &s)
            s += ":"
            appendJSONValue(metadata[key]!, to: &s)
        }
        s += "}\n"
        return s
    }

    /// `09:47:01.123 info split: message key=value key2="two words"` (local time).
    static func textLine(date: Date, level: Logger.Level, label: String, message: String,
                         metadata: Logger.Metadata) -> String {
        var s = "\(clockTime(date)) \(level.rawValue) \(label): \(message)"
        for key in metadata.keys.sorted() {
            s += " \(key)=" + textValue(metadata[key]!)
        }
        s += "\n"
        return s
    }

    private static func textValue(_ v: Logger.Metadata.Value) -> String {
        let raw: String
        switch v {
        case .string(let x): raw = x
        case .stringConvertible(let x): raw = x.description
        case .array(let xs): return "[" + xs.map(textValue).joined(separator: ",") + "]"
        case .dictionary(let d): return "{" + d.keys.sorted().map { "\($0)=" + textValue(d[$0]!) }.joined(separator: ",") + "}"
        }
        let needsQuotes = raw.isEmpty || raw.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }
        if !needsQuotes { return raw }
        var q = ""
        JSONString.append(raw, to: &q)
        return q
    }

    private static func appendJSONValue(_ v: Logger.Metadata.Value, to s: inout String) {
        switch v {
        case .string(let x): JSONString.append(x, to: &s)
        case .stringConvertible(let x):
            // Numbers and booleans stay JSON numbers/booleans so log queries can compare them.
            switch x {
            case let b as Bool: s += b ? "true" : "false"
            case is Int, is Int64, is Int32, is UInt, is UInt64, is UInt32: s += x.description
            case let d as Double where d.isFinite: s += x.description
            default: JSONString.append(x.description, to: &s)
            }
        case .array(let xs):
            s += "["
            for (i, x) in xs.enumerated() {
                if i > 0 { s += "," }
                appendJSONValue(x, to: &s)
            }
            s += "]"
        case .dictionary(let d):
            s += "{"
            for (i, k) in d.keys.sorted().enumerated() {
                if i > 0 { s += "," }
                JSONString.append(k, to: &s)
                s += ":"
                appendJSONValue(d[k]!, to: &s)
            }
            s += "}"
        }
    }

    /// RFC 3339 UTC with milliseconds, e.g. 2026-11-21T09:47:01.123Z.
    static func rfc3339(_ date: Date) -> String {
        let (t, ms) = split(date)
        var tmv = tm()
        var secs = t
        gmtime_r(&secs, &tmv)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                      Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1, Int(tmv.tm_mday),
                      Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec), ms)
    }

    /// Local wall-clock HH:mm:ss.SSS for the terminal format.
    static func clockTime(_ date: Date) -> String {
        let (t, ms) = split(date)
        var tmv = tm()
        var secs = t
        localtime_r(&secs, &tmv)
        return String(format: "%02d:%02d:%02d.%03d", Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec), ms)
    }

    private static func split(_ date: Date) -> (time_t, Int) {
        let totalMs = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let secs = totalMs >= 0 ? totalMs / 1000 : (totalMs - 999) / 1000
        return (time_t(secs), Int(totalMs - secs * 1000))
    }

    private static let stderrLock = Mutex<Void>(())

    @Sendable public static func writeStderr(_ bytes: [UInt8]) {
        stderrLock.withLock { _ in
            bytes.withUnsafeBytes { buf in
                var off = 0
                while off < buf.count {
                    let n = write(STDERR_FILENO, buf.baseAddress! + off, buf.count - off)
                    if n < 0 {
                        if errno == EINTR { continue }
                        return   // nowhere left to report a failing stderr
                    }
                    off += n
                }
            }
        }
    }
}
