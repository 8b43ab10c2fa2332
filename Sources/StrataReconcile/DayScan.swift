import Foundation
public import StrataArchive
public import StrataDims

/// Progress of a scan, for a terminal progress line.
public struct ScanProgress: Sendable {
    public var filesDone: Int
    public var files: Int
    public var compressedBytesDone: Int64
    public var compressedBytes: Int64
    public var lines: Int
    public var seconds: Double
}

/// The batch side of one day, recomputed from the archive with the stream's rules (but none of
/// its code): validation, action, content-id pattern, known contents, dedupe by event_id in a
/// (minute, content, user) cell, row-to-column counts, play_ms, uv. No lateness limit: every
/// event of the day counts, whenever it arrived.
public final class DayScan {
    public let day: ArchiveDay
    public let archiveRoot: String
    public private(set) var counts: ScanCounts
    public let seconds: Double

    var batch: BatchDay
    /// Per interned content: its dimension row (nil: unknown to the store).
    var dims: [ContentDim?] = []
    /// Late contributions per row key (what every-copy-late events added to the batch).
    var lateRows: [UInt64: Metrics] = [:]

    /// Scans the day. `lateRecords` are the values read from ods.late (or a late file): events of
    /// other days among them are ignored. Throws ``ReconcileError/badInput(_:)`` when the day has
    /// no archive folder.
    public init(day: ArchiveDay, archiveRoot: String, actions: [String], contentIdPattern: String,
                store: any DimensionStore, lateRecords: [[UInt8]],
                progress: (ScanProgress) -> Void = { _ in }) throws {
        self.day = day
        self.archiveRoot = archiveRoot
        let started = ContinuousClock.now
        var files: [ArchiveFile]
        do {
            files = try ArchiveLayout.listDay(root: archiveRoot, day: day)
        } catch let e as ArchiveLayoutError {
            if case .dayNotFound = e { throw ReconcileError.badInput("\(e) (archive root: --archive \(archiveRoot))") }
            throw ReconcileError.archive("\(e)")
        }
        // Lines with an unreadable ts are dated by arrival: an event of this day that arrived
        // after midnight sits in the next day's invalid folder.
        let next = ArchiveDay(epochMs: day.endMs)
        if ArchiveLayout.dayExists(root: archiveRoot, day: next),
           let nextFiles = try? ArchiveLayout.listDay(root: archiveRoot, day: next) {
            files += nextFiles.filter { $0.folder == .invalid }
        }

        var b = BatchDay(dayStart: day.startMs, actions: actions, pattern: try ContentIdMatcher(contentIdPattern))
        for record in lateRecords {
            try record.withUnsafeBytes { try b.addLate($0) }
        }

        let sizes = files.map { (try? FileManager.default.attributesOfItem(atPath: $0.path)[.size] as? NSNumber)?.int64Value ?? 0 }
        let totalBytes = sizes.reduce(0, +)
        var doneBytes: Int64 = 0
        func elapsed() -> Double {
            let d = ContinuousClock.now - started
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        for (i, file) in files.enumerated() {
            let reader = ZstdLineReader(path: file.path)
            let invalid = file.folder == .invalid
            var sinceReport = 0
            do {
                try reader.forEachLine { line in
                    try b.add(line, invalidFolder: invalid)
                    sinceReport += 1
                    if sinceReport == 65_536 {
                        sinceReport = 0
                        progress(ScanProgress(filesDone: i, files: files.count, compressedBytesDone: doneBytes + reader.compressedBytes,
                                              compressedBytes: totalBytes, lines: b.counts.lines, seconds: elapsed()))
                    }
                }
            } catch let e as ReconcileError {
                throw e
            } catch {
                throw ReconcileError.archive("\(error)")
            }
            doneBytes += reader.compressedBytes
            progress(ScanProgress(filesDone: i + 1, files: files.count, compressedBytesDone: doneBytes,
                                  compressedBytes: totalBytes, lines: b.counts.lines, seconds: elapsed()))
        }
        b.counts.files = files.count
        b.counts.compressedBytes = doneBytes
        batch = b
        counts = b.counts
        seconds = elapsed()
        try resolveContents(store: store)
    }

    /// Looks up every content id the day mentions (well-formed ones) in the dimension store: the
    /// stream's "unknown content" rule, applied per content after the scan.
    func resolveContents(store: any DimensionStore, extra: [String] = []) throws {
        for id in extra {
            var isNew = false
            var s = id
            let c = s.withUTF8 { batch.contents.intern(UnsafeRawBufferPointer($0), isNew: &isNew) }
            if isNew {
                batch.contentWellFormed.append(batch.pattern.matches(id))
                batch.contentEvents.append(0)
                batch.contentDuplicates.append(0)
            }
            _ = c
        }
        var ids: [String] = []
        for c in 0..<batch.contents.count where batch.contentWellFormed[c] {
            ids.append(batch.contents.string(UInt32(c)))
        }
        let found: [String: ContentDim]
        do { found = try store.contents(ids) } catch { throw ReconcileError.source("dimension store: \(error)") }
        dims = (0..<batch.contents.count).map { c in
            batch.contentWellFormed[c] ? found[batch.contents.string(UInt32(c))] : nil
        }
        applyContentRules()
    }

    private func applyContentRules() {
        var c = batch.counts
        c.filtered["unknown_content_id"] = nil
        c.duplicates = 0
        c.events = 0
        for i in 0..<batch.contents.count where batch.contentEvents[i] > 0 {
            if dims[i] == nil {
                c.filtered["unknown_content_id", default: 0] += Int(batch.contentEvents[i])
            } else {
                c.duplicates += Int(batch.contentDuplicates[i])
                c.events += Int(batch.contentEvents[i] - batch.contentDuplicates[i])
            }
        }
        // Late events: those whose every copy was late explain differences; a late copy of an event
        // the stream counted in time explains nothing.
        c.lateNotInArchive = 0
        c.lateDuplicatesOfCounted = 0
        c.lateExplaining = 0
        lateRows = [:]
        var cellsLeft: [UInt64: UInt32] = [:]
        for entry in batch.late.values {
            if entry.archiveCopies == 0 { c.lateNotInArchive += entry.lateCopies; continue }
            if entry.archiveCopies > entry.lateCopies { c.lateDuplicatesOfCounted += entry.lateCopies; continue }
            guard dims[Int(entry.content)] != nil else { continue }
            c.lateExplaining += 1
            var m = lateRows[entry.row, default: Metrics()]
            if entry.metric >= 0, let metric = Metric(rawValue: entry.metric) { m[metric] += 1 }
            m[.playMs] += entry.playMs
            let left = (cellsLeft[entry.cell] ?? batch.lateCellEvents[entry.cell] ?? 1) - 1
            cellsLeft[entry.cell] = left
            if left == 0 { m[.uv] += 1 }
            lateRows[entry.row] = m
        }
        counts = c
    }

    // MARK: Views for the comparison and the settlement

    /// Interned contents so far (batch and stream).
    var contentCount: Int { batch.contents.count }

    func contentId(_ c: UInt32) -> String { batch.contents.string(c) }
    func category(_ c: UInt32) -> String? { Int(c) < dims.count ? dims[Int(c)]?.category : nil }
    func isKnown(_ c: UInt32) -> Bool { Int(c) < dims.count && dims[Int(c)] != nil }

    /// Batch rows of known contents: (row key, metrics).
    func forEachRow(_ body: (UInt64, Metrics) -> Void) {
        for (i, key) in batch.rowKeys.enumerated() where isKnown(UInt32(truncatingIfNeeded: key)) {
            body(key, batch.rowMetrics[i])
        }
    }

    func batchRow(_ key: UInt64) -> Metrics? {
        guard isKnown(UInt32(truncatingIfNeeded: key)), let i = batch.rowIndex[key] else { return nil }
        return batch.rowMetrics[Int(i)]
    }

    /// Distinct users with a counted click, per content (known contents).
    func clickersPerContent() -> [UInt32: Int] {
        var out: [UInt32: Int] = [:]
        batch.clickers.forEach { k in
            let c = UInt32(k >> 32)
            if isKnown(c) { out[c, default: 0] += 1 }
        }
        return out
    }

    /// The content id's interned index, adding it when the stream mentions a content the batch
    /// never saw.
    func internContent(_ id: String) -> (UInt32, isNew: Bool) {
        if let c = batch.contents.find(id) { return (c, false) }
        var isNew = false
        var s = id
        let c = s.withUTF8 { batch.contents.intern(UnsafeRawBufferPointer($0), isNew: &isNew) }
        batch.contentWellFormed.append(batch.pattern.matches(id))
        batch.contentEvents.append(0)
        batch.contentDuplicates.append(0)
        return (c, true)
    }
}
