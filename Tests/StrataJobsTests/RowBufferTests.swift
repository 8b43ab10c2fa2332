@testable import StrataJobs
import StrataTestSupport
import XCTest

/// The row encoder's byte buffer: integers at their edges, growth past the first capacity, and
/// strings with and without escapes, against Swift's own text of the same values.
final class RowBufferTests: XCTestCase {
    func testIntegersStringsAndGrowthMatchAnIndependentText() {
        let b = RowBuffer(capacity: 8)   // grows many times below
        var expected = ""
        let ints: [Int64] = [0, 1, 9, 10, 99, 100, -1, -10, 1_700_000_040_000, .max, .min, .min + 1]
        for v in ints {
            b.appendInt(v); b.append(UInt8(ascii: ","))
            expected += "\(v),"
        }
        let strings = ["", "c0001", "Zhèjiāng 浙江", "a\"b", "back\\slash", "tab\tnew\nline", "\u{1}", String(repeating: "x", count: 3_000)]
        for s in strings {
            b.appendJSONString(s)
            b.append(":")
            expected += IndependentJSON.quoted(s) + ":"
        }
        XCTAssertEqual(String(decoding: b.bytes, as: UTF8.self), expected)
        b.removeAll()
        b.append("{}")
        XCTAssertEqual(Array(b.bytes), Array("{}".utf8))

        // Ids from the engine come as bytes: the same text as their String, invalid UTF-8 included.
        let byteIds: [[UInt8]] = strings.map { Array($0.utf8) } + [[0x75, 0xFF, 0x31], [0xC3], Array("u\u{7F}x".utf8)]
        for id in byteIds {
            let viaBytes = RowBuffer(capacity: 2), viaString = RowBuffer(capacity: 2)
            id.withUnsafeBytes { viaBytes.appendJSONString($0) }
            viaString.appendJSONString(String(decoding: id, as: UTF8.self))
            XCTAssertEqual(Array(viaBytes.bytes), Array(viaString.bytes), "\(id)")
        }

        // A buffer emptied with a limit shrinks back only when it grew past it.
        [UInt8](repeating: UInt8(ascii: "y"), count: 5_000).withUnsafeBytes { b.append($0) }
        b.removeAll(keepingCapacityUpTo: 1 << 20)
        b.appendInt(7)
        XCTAssertEqual(Array(b.bytes), Array("7".utf8))
        b.removeAll(keepingCapacityUpTo: 16)
        XCTAssertEqual(b.count, 0)
    }
}

/// The arena the dwm job's rows wait in until their transaction ends: rows across chunk
/// boundaries and larger than a chunk read back as written, after a reset too.
final class RowArenaTests: XCTestCase {
    func testRowsAcrossChunksAndOversizedRowsReadBackAsWritten() {
        let arena = RowArena(retainedBytes: 4 << 20)
        for round in 0..<2 {
            var rows: [[UInt8]] = []
            var views: [UnsafeRawBufferPointer] = []
            // ≈ 11 MB in rows of 1–40 000 bytes (three chunks at least), and two of 5 MB.
            var seed: UInt64 = 0x9E37_79B9 &+ UInt64(round)
            var total = 0
            while total < 11 << 20 {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let n = 1 + Int(seed >> 33) % 40_000
                // Each row's first and last bytes differ from its body: a row read from the wrong
                // place or cut short does not match.
                var row = [UInt8](repeating: UInt8(truncatingIfNeeded: seed >> 40), count: n)
                row[0] = UInt8(truncatingIfNeeded: rows.count)
                row[n - 1] &+= 1
                rows.append(row)
                total += n
                if rows.count == 100 || rows.count == 200 { rows.append([UInt8](repeating: UInt8(rows.count % 251), count: 5 << 20)) }
            }
            for row in rows { views.append(row.withUnsafeBytes { arena.append($0) }) }
            for (row, view) in zip(rows, views) where !view.elementsEqual(row) {
                XCTFail("round \(round): a row of \(row.count) bytes did not read back")
                break
            }
            arena.reset()
        }
    }
}
