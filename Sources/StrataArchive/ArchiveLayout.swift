#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif

/// A calendar day in UTC, as the archive names it (`dt=YYYY-MM-DD`).
public struct ArchiveDay: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let year: Int
    public let month: Int
    public let day: Int

    public static let msPerDay: Int64 = 86_400_000

    /// `YYYY-MM-DD`, a real date (no 2026-02-30); nil otherwise.
    public init?(_ text: String) {
        let u = Array(text.utf8)
        guard u.count == 10, u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"),
              let y = Self.digits(u[0..<4]), let m = Self.digits(u[5..<7]), let d = Self.digits(u[8..<10]),
              y >= 1970, (1...12).contains(m), d >= 1, d <= Self.daysIn(month: m, year: y) else { return nil }
        year = y
        month = m
        day = d
    }

    /// The UTC day that contains `epochMs` (≥ 0).
    public init(epochMs: Int64) {
        let days = Int(epochMs >= 0 ? epochMs / Self.msPerDay : (epochMs - Self.msPerDay + 1) / Self.msPerDay)
        (year, month, day) = Self.civil(fromDays: days)
    }

    /// Epoch ms of 00:00:00.000 UTC.
    public var startMs: Int64 { Int64(Self.days(year: year, month: month, day: day)) * Self.msPerDay }
    /// Epoch ms of the next day's start (exclusive end).
    public var endMs: Int64 { startMs + Self.msPerDay }

    public var description: String {
        func pad(_ v: Int, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }

    public static func < (a: ArchiveDay, b: ArchiveDay) -> Bool {
        (a.year, a.month, a.day) < (b.year, b.month, b.day)
    }

    private static func digits(_ s: ArraySlice<UInt8>) -> Int? {
        var v = 0
        for c in s {
            guard c >= 0x30 && c <= 0x39 else { return nil }
            v = v * 10 + Int(c - 0x30)
        }
        return v
    }

    private static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    // Howard Hinnant's days-from-civil and civil-from-days (proleptic Gregorian, UTC).
    private static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func civil(fromDays z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// One completed archive file, as named by ``ArchiveLayout``.
public struct ArchiveFile: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Which folder of the day: an hour of event time, or the invalid lines.
    public enum Folder: Sendable, Hashable, Comparable {
        case hour(Int)
        /// Lines whose `ts` could not be read (or that held a newline), dated by arrival.
        case invalid

        public static func < (a: Folder, b: Folder) -> Bool {
            switch (a, b) {
            case (.hour(let x), .hour(let y)): x < y
            case (.hour, .invalid): true
            case (.invalid, _): false
            }
        }
    }

    public let day: ArchiveDay
    public let folder: Folder
    /// The `ods.raw` partition the lines came from.
    public let partition: Int32
    /// The Kafka offset of the file's first line.
    public let firstOffset: Int64
    /// Full path (the root joined with ``relativePath``).
    public let path: String

    public init(day: ArchiveDay, folder: Folder, partition: Int32, firstOffset: Int64, root: String) {
        self.day = day
        self.folder = folder
        self.partition = partition
        self.firstOffset = firstOffset
        self.path = ArchiveLayout.join(root, ArchiveLayout.relativePath(day: day, folder: folder, partition: partition,
                                                                        firstOffset: firstOffset))
    }

    public var relativePath: String {
        ArchiveLayout.relativePath(day: day, folder: folder, partition: partition, firstOffset: firstOffset)
    }

    public var description: String { path }

    /// Day, then hours ascending and the invalid folder last, then partition, then first offset:
    /// the order ``ArchiveLayout/listDay(root:day:)`` returns.
    public static func < (a: ArchiveFile, b: ArchiveFile) -> Bool {
        (a.day, a.folder, a.partition, a.firstOffset) < (b.day, b.folder, b.partition, b.firstOffset)
    }

    public static func == (a: ArchiveFile, b: ArchiveFile) -> Bool {
        a.day == b.day && a.folder == b.folder && a.partition == b.partition && a.firstOffset == b.firstOffset
    }

    public func hash(into h: inout Hasher) {
        h.combine(day)
        h.combine(folder)
        h.combine(partition)
        h.combine(firstOffset)
    }
}

public enum ArchiveLayoutError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `ROOT/dt=DAY` does not exist (nothing archived for that day, or a wrong root).
    case dayNotFound(root: String, day: ArchiveDay)
    case unreadable(path: String, errno: Int32)

    public var description: String {
        switch self {
        case .dayNotFound(let root, let day):
            "no archive for \(day): \(ArchiveLayout.join(root, "dt=\(day)")) does not exist"
        case .unreadable(let path, let err): "cannot list \(path): \(String(cString: strerror(err)))"
        }
    }
}

/// The archive's path contract, shared by the writer (`strata job archive`) and the readers
/// (`strata reconcile`, `strata settle`):
///
/// ```
/// ROOT/dt=YYYY-MM-DD/hour=HH/part-<partition>-<firstOffset>.ndjson.zst     event time (ts, UTC)
/// ROOT/dt=YYYY-MM-DD/invalid/part-<partition>-<firstOffset>.ndjson.zst     ts unreadable: arrival day
/// ROOT/dt=YYYY-MM-DD/hour=HH/.part-<partition>-<firstOffset>.ndjson.zst.inprogress   being written
/// ```
///
/// Each line is one `ods.raw` record value verbatim followed by `\n`. A value that contains a raw
/// newline byte goes to the invalid folder with each newline replaced by a carriage return: one
/// record per line, and exactly as valid or invalid JSON as before (a CR is whitespace where a
/// newline was whitespace, and a raw control character inside a string, as the newline was). A file is written under its in-progress name and renamed to the completed name
/// once finished and fsynced; readers list only completed names, so they never see a partial file.
public enum ArchiveLayout {
    public static let fileSuffix = ".ndjson.zst"
    public static let inProgressSuffix = ".inprogress"
    public static let invalidFolder = "invalid"
    public static let msPerHour: Int64 = 3_600_000

    // MARK: Formatting

    /// `dt=YYYY-MM-DD/hour=HH/part-P-O.ndjson.zst` or `dt=YYYY-MM-DD/invalid/part-P-O.ndjson.zst`.
    public static func relativePath(day: ArchiveDay, folder: ArchiveFile.Folder, partition: Int32, firstOffset: Int64) -> String {
        "\(folderPath(day: day, folder: folder))/\(fileName(partition: partition, firstOffset: firstOffset))"
    }

    /// `ROOT/dt=…/hour=HH/part-P-O.ndjson.zst` (`hour` nil: the invalid folder).
    public static func path(root: String, day: ArchiveDay, hour: Int?, partition: Int32, firstOffset: Int64) -> String {
        join(root, relativePath(day: day, folder: hour.map { .hour($0) } ?? .invalid, partition: partition, firstOffset: firstOffset))
    }

    /// `dt=YYYY-MM-DD/hour=HH` or `dt=YYYY-MM-DD/invalid`.
    public static func folderPath(day: ArchiveDay, folder: ArchiveFile.Folder) -> String {
        switch folder {
        case .hour(let h): "dt=\(day)/hour=\(h < 10 ? "0" : "")\(h)"
        case .invalid: "dt=\(day)/\(invalidFolder)"
        }
    }

    /// `part-P-O.ndjson.zst`
    public static func fileName(partition: Int32, firstOffset: Int64) -> String {
        "part-\(partition)-\(firstOffset)\(fileSuffix)"
    }

    /// The name a file has while it is written: `.part-P-O.ndjson.zst.inprogress` in the same folder.
    public static func inProgressPath(for completedPath: String) -> String {
        guard let slash = completedPath.lastIndex(of: "/") else { return "." + completedPath + inProgressSuffix }
        let dir = completedPath[...slash]
        let name = completedPath[completedPath.index(after: slash)...]
        return "\(dir).\(name)\(inProgressSuffix)"
    }

    /// Where a line with event time `ts` belongs: its UTC day and hour.
    public static func location(ts: Int64) -> (day: ArchiveDay, hour: Int) {
        let day = ArchiveDay(epochMs: ts)
        return (day, Int((ts - day.startMs) / msPerHour))
    }

    static func join(_ root: String, _ relative: String) -> String {
        if root.isEmpty { return relative }
        return root.hasSuffix("/") ? root + relative : root + "/" + relative
    }

    // MARK: Parsing

    /// `part-P-O.ndjson.zst` → (P, O); nil for anything else (in-progress names included).
    public static func parseFileName(_ name: String) -> (partition: Int32, firstOffset: Int64)? {
        guard name.hasPrefix("part-"), name.hasSuffix(fileSuffix) else { return nil }
        let core = name.dropFirst("part-".count).dropLast(fileSuffix.count)
        let parts = core.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let p = plainInteger(parts[0]), let o = plainInteger(parts[1]),
              p <= Int64(Int32.max) else { return nil }
        return (Int32(p), o)
    }

    /// A relative path `dt=…/hour=HH/part-….ndjson.zst` (or `…/invalid/…`) back to its parts;
    /// nil when any component does not follow the contract.
    public static func parse(relativePath: String, root: String = "") -> ArchiveFile? {
        let parts = relativePath.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count == 3, parts[0].hasPrefix("dt="),
              let day = ArchiveDay(String(parts[0].dropFirst(3))),
              let folder = parseFolder(String(parts[1])),
              let (p, o) = parseFileName(String(parts[2])) else { return nil }
        return ArchiveFile(day: day, folder: folder, partition: p, firstOffset: o, root: root)
    }

    /// `hour=HH` (00…23) or `invalid`.
    public static func parseFolder(_ name: String) -> ArchiveFile.Folder? {
        if name == invalidFolder { return .invalid }
        guard name.hasPrefix("hour="), name.utf8.count == 7, let h = plainInteger(name.dropFirst(5)), h < 24 else { return nil }
        return .hour(Int(h))
    }

    /// Decimal digits only (no sign, no spaces), fitting Int64.
    private static func plainInteger(_ s: Substring) -> Int64? {
        guard !s.isEmpty, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(s)
    }

    // MARK: Listing

    /// True when `ROOT/dt=DAY` exists.
    public static func dayExists(root: String, day: ArchiveDay) -> Bool {
        guard let dir = opendir(join(root, "dt=\(day)")) else { return false }
        closedir(dir)
        return true
    }

    /// The completed files of a day, in a stable order (hours ascending, the invalid folder last,
    /// then partition and first offset). In-progress files, other names and other folders are
    /// ignored. Throws ``ArchiveLayoutError/dayNotFound(root:day:)`` when the day has no folder.
    public static func listDay(root: String, day: ArchiveDay) throws -> [ArchiveFile] {
        let dayPath = join(root, "dt=\(day)")
        guard dayExists(root: root, day: day) else { throw ArchiveLayoutError.dayNotFound(root: root, day: day) }
        var files: [ArchiveFile] = []
        for folderName in try entries(dayPath) {
            guard let folder = parseFolder(folderName) else { continue }
            for name in try entries(join(dayPath, folderName)) {
                guard let (p, o) = parseFileName(name) else { continue }
                files.append(ArchiveFile(day: day, folder: folder, partition: p, firstOffset: o, root: root))
            }
        }
        return files.sorted()
    }

    /// The days under `root` (folders `dt=YYYY-MM-DD`), ascending.
    public static func days(root: String) throws -> [ArchiveDay] {
        try entries(root).compactMap { $0.hasPrefix("dt=") ? ArchiveDay(String($0.dropFirst(3))) : nil }.sorted()
    }

    /// Directory entry names, without "." and ".."; a missing directory has none.
    private static func entries(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            if errno == ENOENT || errno == ENOTDIR { return [] }
            throw ArchiveLayoutError.unreadable(path: path, errno: errno)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    // MARK: Placing a line

    /// Where the archive writer puts one `ods.raw` value: the hour folder of its `ts`, or the
    /// invalid folder of its arrival day when `ts` cannot be read or the value holds a newline.
    public enum Placement: Sendable, Equatable {
        case hour(ArchiveDay, Int)
        /// The line must be written with every `\n` replaced by `\r` (`needsNewlineEscape`).
        case invalid(ArchiveDay, needsNewlineEscape: Bool)
    }

    public static func placement(value: UnsafeRawBufferPointer, arrivalMs: Int64) -> Placement {
        if let base = value.baseAddress, memchr(base, 0x0A, value.count) != nil {
            return .invalid(ArchiveDay(epochMs: arrivalMs), needsNewlineEscape: true)
        }
        guard let ts = ArchiveTimestamp.read(value) else {
            return .invalid(ArchiveDay(epochMs: max(0, arrivalMs)), needsNewlineEscape: false)
        }
        let (day, hour) = location(ts: ts)
        return .hour(day, hour)
    }
}

/// Reads the top-level `"ts"` of a JSON object when it is a non-negative integer — the one field
/// the archive is partitioned by. Not a validator: a value that is otherwise malformed but has a
/// readable `ts` still goes to its hour folder (readers validate every line themselves).
public enum ArchiveTimestamp {
    public static func read(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        var i = 0
        let n = bytes.count
        func ws() { while i < n, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 } }
        /// Skips a string starting at its opening quote; false when unterminated.
        func skipString() -> Bool {
            i += 1
            while i < n {
                if bytes[i] == 0x5C { i += 2; continue }
                if bytes[i] == 0x22 { i += 1; return true }
                i += 1
            }
            return false
        }
        /// Skips any value; false on a syntax problem it cannot get past.
        func skipValue() -> Bool {
            guard i < n else { return false }
            if bytes[i] == 0x22 { return skipString() }
            if bytes[i] == UInt8(ascii: "{") || bytes[i] == UInt8(ascii: "[") {
                var depth = 0
                while i < n {
                    switch bytes[i] {
                    case 0x22: if !skipString() { return false }; continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 { i += 1; return true }
                    default: break
                    }
                    i += 1
                }
                return false
            }
            while i < n, bytes[i] != UInt8(ascii: ","), bytes[i] != UInt8(ascii: "}") { i += 1 }
            return true
        }
        ws()
        guard i < n, bytes[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        while true {
            ws()
            guard i < n, bytes[i] == 0x22 else { return nil }
            let keyStart = i + 1
            guard skipString() else { return nil }
            let isTs = i - keyStart - 1 == 2 && bytes[keyStart] == UInt8(ascii: "t") && bytes[keyStart + 1] == UInt8(ascii: "s")
            ws()
            guard i < n, bytes[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            ws()
            if isTs {
                var v: Int64 = 0
                let start = i
                while i < n, bytes[i] >= 0x30, bytes[i] <= 0x39 {
                    let (m, o1) = v.multipliedReportingOverflow(by: 10)
                    let (s, o2) = m.addingReportingOverflow(Int64(bytes[i] - 0x30))
                    if o1 || o2 { return nil }
                    v = s
                    i += 1
                }
                guard i > start else { return nil }
                ws()
                // A fraction or exponent is not an integer ts.
                guard i < n, bytes[i] == UInt8(ascii: ",") || bytes[i] == UInt8(ascii: "}") else { return nil }
                return v
            }
            guard skipValue() else { return nil }
            ws()
            guard i < n else { return nil }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            return nil // "}" without a ts, or garbage
        }
    }
}

extension ZstdFileWriter {
    /// Writes `value` as one archive line: with `replacingNewlines` (the invalid folder's rule for a
    /// value holding a raw newline) each `\n` becomes `\r`: the value stays one line and keeps its
    /// JSON validity (whitespace stays whitespace; inside a string both are forbidden control bytes).
    public func writeArchiveLine(_ value: UnsafeRawBufferPointer, replacingNewlines: Bool = false) throws {
        guard replacingNewlines, let base = value.baseAddress else { return try writeLine(value) }
        var start = 0
        var space: UInt8 = 0x0D
        while start < value.count, let nl = memchr(base + start, 0x0A, value.count - start) {
            let end = UnsafeRawPointer(nl) - base
            try write(UnsafeRawBufferPointer(start: base + start, count: end - start))
            try withUnsafeBytes(of: &space) { try write($0) }
            start = end + 1
        }
        try writeLine(UnsafeRawBufferPointer(start: base + start, count: value.count - start))
    }
}
