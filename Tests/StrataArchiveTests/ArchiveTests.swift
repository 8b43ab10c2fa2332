import Foundation
import StrataArchive
import XCTest

final class ZstdTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-zstd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    private func line(_ i: Int) -> String {
        // Varying lengths, some longer than the reader's smallest buffer, to cross buffer edges.
        let pad = String(repeating: "x", count: (i * 37) % 300 + (i % 997 == 0 ? 9_000 : 0))
        return #"{"event_id":"e\#(i)","ts":\#(1_795_219_200_000 + Int64(i)),"action":"click","pad":"\#(pad)"}"#
    }

    func testRoundTripManyLinesAcrossFrames() throws {
        let path = dir.appendingPathComponent("a.ndjson.zst").path
        let writer = try ZstdFileWriter(path: path, level: 1)
        let count = 60_000
        for i in 0..<count {
            var text = line(i)
            try text.withUTF8 { try writer.writeLine(UnsafeRawBufferPointer($0)) }
            if i % 20_000 == 19_999 { try writer.finish() } // three frames
        }
        try writer.sync()
        try writer.close()
        XCTAssertGreaterThan(writer.compressedBytes, 0)
        XCTAssertLessThan(writer.compressedBytes, writer.uncompressedBytes / 4, "repetitive JSON compresses well")

        // A small buffer forces lines across buffer boundaries and buffer growth for long lines.
        let reader = ZstdLineReader(path: path, bufferSize: 4096)
        var n = 0
        var mismatches = 0
        try reader.forEachLine { bytes in
            if String(decoding: bytes, as: UTF8.self) != line(n) { mismatches += 1 }
            n += 1
        }
        XCTAssertEqual(n, count)
        XCTAssertEqual(mismatches, 0)
        XCTAssertEqual(reader.lines, Int64(count))

        // Frames concatenated by `cat` (two writers' files) read as one stream.
        let other = dir.appendingPathComponent("b.ndjson.zst").path
        let w2 = try ZstdFileWriter(path: other)
        var last = "tail without newline"
        try last.withUTF8 { try w2.write(UnsafeRawBufferPointer($0)) }
        try w2.close()
        let joined = dir.appendingPathComponent("joined.ndjson.zst").path
        let data = try Data(contentsOf: URL(fileURLWithPath: path)) + Data(contentsOf: URL(fileURLWithPath: other))
        try data.write(to: URL(fileURLWithPath: joined))
        var lines: [String] = []
        try ZstdLineReader(path: joined).forEachLine { lines.append(String(decoding: $0, as: UTF8.self)) }
        XCTAssertEqual(lines.count, count + 1)
        XCTAssertEqual(lines.last, "tail without newline")
    }

    func testTruncatedFileRaisesClearError() throws {
        let path = dir.appendingPathComponent("t.ndjson.zst").path
        let writer = try ZstdFileWriter(path: path)
        for i in 0..<5_000 {
            var text = line(i)
            try text.withUTF8 { try writer.writeLine(UnsafeRawBufferPointer($0)) }
        }
        try writer.close()
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = dir.appendingPathComponent("cut.ndjson.zst").path
        try full.prefix(full.count - 7).write(to: URL(fileURLWithPath: cut))

        var delivered = 0
        XCTAssertThrowsError(try ZstdLineReader(path: cut).forEachLine { _ in delivered += 1 }) { error in
            guard case ZstdError.truncated(let p, _) = error else { return XCTFail("expected truncated, got \(error)") }
            XCTAssertEqual(p, cut)
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
        XCTAssertLessThan(delivered, 5_000)

        // Garbage is reported as corrupt, a missing file as an I/O error naming it.
        let junk = dir.appendingPathComponent("junk.ndjson.zst").path
        try Data("this is not zstd at all\n".utf8).write(to: URL(fileURLWithPath: junk))
        XCTAssertThrowsError(try ZstdLineReader(path: junk).forEachLine { _ in }) { error in
            guard case ZstdError.corrupt = error else { return XCTFail("expected corrupt, got \(error)") }
        }
        XCTAssertThrowsError(try ZstdLineReader(path: dir.appendingPathComponent("none").path).forEachLine { _ in }) { error in
            XCTAssertTrue("\(error)".contains("none"), "\(error)")
        }
    }

    func testFlippedByteIsCaughtByChecksum() throws {
        let path = dir.appendingPathComponent("c.ndjson.zst").path
        let writer = try ZstdFileWriter(path: path)
        for i in 0..<2_000 {
            var text = line(i)
            try text.withUTF8 { try writer.writeLine(UnsafeRawBufferPointer($0)) }
        }
        try writer.close()
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0x5A
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ZstdLineReader(path: path).forEachLine { _ in }) { error in
            guard case ZstdError.corrupt = error else { return XCTFail("expected corrupt, got \(error)") }
        }
    }
}

final class ArchiveLayoutTests: XCTestCase {
    func testDayParsingAndFormatting() throws {
        XCTAssertEqual(ArchiveDay("2026-12-01")?.description, "2026-12-01")
        XCTAssertEqual(ArchiveDay("2028-02-29")?.description, "2028-02-29")
        for bad in ["2026-02-29", "2026-13-01", "2026-1-01", "26-12-01", "2026/12/01", "", "2026-12-01x", "1969-12-31"] {
            XCTAssertNil(ArchiveDay(bad), bad)
        }
        let day = try XCTUnwrap(ArchiveDay("2026-11-20"))
        XCTAssertEqual(day.startMs, 1_795_132_800_000)
        XCTAssertEqual(ArchiveDay(epochMs: day.startMs), day)
        XCTAssertEqual(ArchiveDay(epochMs: day.endMs - 1), day)
        XCTAssertEqual(ArchiveDay(epochMs: day.endMs).description, "2026-11-21")
        XCTAssertEqual(ArchiveDay(epochMs: 0).description, "1970-01-01")
        let (d, h) = ArchiveLayout.location(ts: day.startMs + 13 * 3_600_000 + 59_999)
        XCTAssertEqual(d, day)
        XCTAssertEqual(h, 13)
    }

    func testFormatParseRoundTrip() throws {
        let day = try XCTUnwrap(ArchiveDay("2026-12-01"))
        let path = ArchiveLayout.path(root: "/data/ods", day: day, hour: 7, partition: 3, firstOffset: 1_234_567)
        XCTAssertEqual(path, "/data/ods/dt=2026-12-01/hour=07/part-3-1234567.ndjson.zst")
        let invalid = ArchiveLayout.path(root: "/data/ods/", day: day, hour: nil, partition: 0, firstOffset: 0)
        XCTAssertEqual(invalid, "/data/ods/dt=2026-12-01/invalid/part-0-0.ndjson.zst")
        XCTAssertEqual(ArchiveLayout.inProgressPath(for: path), "/data/ods/dt=2026-12-01/hour=07/.part-3-1234567.ndjson.zst.inprogress")

        for hour in [0, 9, 23] {
            for (p, o) in [(Int32(0), Int64(0)), (12, 99), (Int32.max, Int64.max)] {
                let rel = ArchiveLayout.relativePath(day: day, folder: .hour(hour), partition: p, firstOffset: o)
                let parsed = try XCTUnwrap(ArchiveLayout.parse(relativePath: rel, root: "/r"))
                XCTAssertEqual(parsed.day, day)
                XCTAssertEqual(parsed.folder, .hour(hour))
                XCTAssertEqual(parsed.partition, p)
                XCTAssertEqual(parsed.firstOffset, o)
                XCTAssertEqual(parsed.path, "/r/" + rel)
            }
        }
        XCTAssertEqual(ArchiveLayout.parse(relativePath: "dt=2026-12-01/invalid/part-2-5.ndjson.zst")?.folder, .invalid)
        for bad in ["dt=2026-12-01/hour=24/part-1-1.ndjson.zst", "dt=2026-12-01/hour=7/part-1-1.ndjson.zst",
                    "dt=2026-12-01/hour=07/.part-1-1.ndjson.zst.inprogress", "dt=2026-12-01/hour=07/part-1.ndjson.zst",
                    "dt=2026-12-01/hour=07/part--1-1.ndjson.zst", "dt=2026-12-01/hour=07/part-1-1.ndjson",
                    "dt=2026-12-32/hour=07/part-1-1.ndjson.zst", "hour=07/part-1-1.ndjson.zst",
                    "dt=2026-12-01/other/part-1-1.ndjson.zst"] {
            XCTAssertNil(ArchiveLayout.parse(relativePath: bad), bad)
        }
    }

    func testListingIgnoresInProgressFilesAndIsOrdered() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("strata-layout-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let day = try XCTUnwrap(ArchiveDay("2026-12-01"))
        let fm = FileManager.default
        let completed = [(10, Int32(1), Int64(500)), (10, 0, 20), (2, 3, 7), (10, 1, 40), (23, 0, 0)]
        for (h, p, o) in completed {
            let path = ArchiveLayout.path(root: root, day: day, hour: h, partition: p, firstOffset: o)
            try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            XCTAssertTrue(fm.createFile(atPath: path, contents: Data()))
        }
        let invalid = ArchiveLayout.path(root: root, day: day, hour: nil, partition: 0, firstOffset: 9)
        try fm.createDirectory(atPath: (invalid as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        XCTAssertTrue(fm.createFile(atPath: invalid, contents: Data()))
        // Noise: an in-progress file, a stray file, an unknown folder, another day.
        let busy = ArchiveLayout.inProgressPath(for: ArchiveLayout.path(root: root, day: day, hour: 10, partition: 2, firstOffset: 1))
        XCTAssertTrue(fm.createFile(atPath: busy, contents: Data()))
        XCTAssertTrue(fm.createFile(atPath: root + "/dt=2026-12-01/hour=10/notes.txt", contents: Data()))
        try fm.createDirectory(atPath: root + "/dt=2026-12-01/tmp", withIntermediateDirectories: true)
        XCTAssertTrue(fm.createFile(atPath: root + "/dt=2026-12-01/tmp/part-0-0.ndjson.zst", contents: Data()))
        let otherDay = ArchiveLayout.path(root: root, day: try XCTUnwrap(ArchiveDay("2026-12-02")), hour: 0, partition: 0, firstOffset: 0)
        try fm.createDirectory(atPath: (otherDay as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        XCTAssertTrue(fm.createFile(atPath: otherDay, contents: Data()))

        let files = try ArchiveLayout.listDay(root: root, day: day)
        XCTAssertEqual(files.map(\.relativePath), [
            "dt=2026-12-01/hour=02/part-3-7.ndjson.zst",
            "dt=2026-12-01/hour=10/part-0-20.ndjson.zst",
            "dt=2026-12-01/hour=10/part-1-40.ndjson.zst",
            "dt=2026-12-01/hour=10/part-1-500.ndjson.zst",
            "dt=2026-12-01/hour=23/part-0-0.ndjson.zst",
            "dt=2026-12-01/invalid/part-0-9.ndjson.zst",
        ])
        XCTAssertTrue(files.allSatisfy { fm.fileExists(atPath: $0.path) })
        XCTAssertEqual(try ArchiveLayout.days(root: root).map(\.description), ["2026-12-01", "2026-12-02"])
        XCTAssertThrowsError(try ArchiveLayout.listDay(root: root, day: try XCTUnwrap(ArchiveDay("2026-11-30")))) { error in
            XCTAssertTrue("\(error)".contains("no archive for 2026-11-30"), "\(error)")
        }
    }

    func testPlacementOfValues() throws {
        let arrival: Int64 = 1_795_219_200_000 // 2026-12-01T00:00Z
        func place(_ s: String) -> ArchiveLayout.Placement {
            var s = s
            return s.withUTF8 { ArchiveLayout.placement(value: UnsafeRawBufferPointer($0), arrivalMs: arrival) }
        }
        let day = try XCTUnwrap(ArchiveDay("2026-11-20"))
        XCTAssertEqual(place(#"{"device":{"ts":1},"s":"a\"ts\":5","ts":1795215600000,"x":[1,{"ts":2}]}"#), .hour(day, 23))
        XCTAssertEqual(place(#" { "ts" : 1795132800000 } "#), .hour(day, 0))
        let arrivalDay = ArchiveDay(epochMs: arrival)
        for bad in [#"{"ts":"1795132800000"}"#, #"{"ts":1.5}"#, #"{"ts":-1}"#, #"{"event_id":"e"}"#, "not json",
                    #"{"ts":99999999999999999999}"#, #"{"ts":1e3}"#] {
            XCTAssertEqual(place(bad), .invalid(arrivalDay, needsNewlineEscape: false), bad)
        }
        XCTAssertEqual(place("{\"ts\":1795132800000,\n\"a\":1}"), .invalid(arrivalDay, needsNewlineEscape: true))

        // The newline rule keeps one record per line.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-nl-\(UUID().uuidString).ndjson.zst").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try ZstdFileWriter(path: dir)
        var v = "a\nb\n\nc"
        try v.withUTF8 { try w.writeArchiveLine(UnsafeRawBufferPointer($0), replacingNewlines: true) }
        var ok = "{}"
        try ok.withUTF8 { try w.writeArchiveLine(UnsafeRawBufferPointer($0)) }
        try w.close()
        var lines: [String] = []
        try ZstdLineReader(path: dir).forEachLine { lines.append(String(decoding: $0, as: UTF8.self)) }
        XCTAssertEqual(lines, ["a\rb\r\rc", "{}"])
    }
}
