import Foundation
import StrataCore
import XCTest
@testable import StrataCollect

final class BodySplitterTests: XCTestCase {
    func split(_ s: String, maxItems: Int = 100) throws(BodyError) -> [String] {
        let bytes = Array(s.utf8)
        let result: Result<[String], BodyError> = bytes.withUnsafeBytes { b in
            do throws(BodyError) {
                return .success(try BodySplitter.split(b, maxItems: maxItems).map { String(decoding: $0.bytes(in: b), as: UTF8.self) })
            } catch { return .failure(error) }
        }
        return try result.get()
    }

    func testArrayItemsAreCutAtTopLevelCommasOnly() throws {
        XCTAssertEqual(try split(#" [ {"a":[1,2],"b":"x,]}"} , {"c":{"d":","}} ] "#),
                       [#"{"a":[1,2],"b":"x,]}"}"#, #"{"c":{"d":","}}"#])
        XCTAssertEqual(try split(#"[{"s":"a\"],"}]"#), [#"{"s":"a\"],"}"#])
        XCTAssertEqual(try split("[1,,2]"), ["1", "", "2"])
    }

    func testNDJSONSkipsBlankLinesAndCarriageReturns() throws {
        XCTAssertEqual(try split("{\"a\":1}\r\n\n  \n{\"b\":2}"), [#"{"a":1}"#, #"{"b":2}"#])
        XCTAssertEqual(try split("not json"), ["not json"])
    }

    func testBodyLevelErrors() {
        XCTAssertThrowsError(try split("  \n ")) { XCTAssertEqual($0 as? BodyError, .empty) }
        XCTAssertThrowsError(try split("[]")) { XCTAssertEqual($0 as? BodyError, .empty) }
        XCTAssertThrowsError(try split(#"[{"a":1},{"b":"#)) { XCTAssertEqual(($0 as? BodyError)?.reason, "malformed_body") }
        XCTAssertThrowsError(try split(#"[{"a":"unterminated]"#)) { XCTAssertEqual(($0 as? BodyError)?.reason, "malformed_body") }
        XCTAssertThrowsError(try split(#"[{"a":1}] trailing"#)) { XCTAssertEqual(($0 as? BodyError)?.reason, "malformed_body") }
        XCTAssertThrowsError(try split("[1,2,3,4]", maxItems: 3)) { XCTAssertEqual($0 as? BodyError, .tooManyItems(limit: 3)) }
        XCTAssertThrowsError(try split("1\n2\n3\n4", maxItems: 3)) { XCTAssertEqual($0 as? BodyError, .tooManyItems(limit: 3)) }
        XCTAssertNoThrow(try split("[1,2,3]", maxItems: 3))
    }
}

final class EventValidatorTests: XCTestCase {
    func testAcceptsWhatTheSplitRoutesOrFiltersAndEnrichesIt() throws {
        let topology = Topology(actions: ["click", "play"], topics: [])
        let validator = try EventValidator(topology: topology)
        let items = [
            #"{"event_id":"e1","ts":5,"action":"click","content_id":"c00000001","user_id":"u1"}"#,
            #"{"event_id":"e2","ts":5,"action":"dance","content_id":"c00000001","user_id":"u1"}"#,
            #"{"event_id":"e3","ts":"5","action":"click","content_id":"c00000001","user_id":"u1"}"#,
            #"{"event_id":"e4","ts":5,"action":"play","content_id":"null","user_id":"u1"}"#,
            #"{"event_id":"e5","ts":5,"action":"play","content_id":"c0000000\u0032","user_id":"u1"}"#,
        ]
        let body = Array(("[" + items.joined(separator: ",") + "]").utf8)
        var rejected: [Rejection] = []
        let batch = try body.withUnsafeBytes { b in
            let ranges = try BodySplitter.split(b, maxItems: 10)
            return validator.validate(body: b, items: ranges, serverTs: 1234, clientIP: "10.1.2.3", rejected: &rejected)
        }
        XCTAssertEqual(rejected, [Rejection(index: 1, reason: "unknown_action"), Rejection(index: 2, reason: "wrong_type:ts")])
        XCTAssertEqual(batch.count, 3)
        var got: [(String, String)] = []
        batch.forEach { k, v in got.append((String(decoding: k, as: UTF8.self), String(decoding: v, as: UTF8.self))) }
        XCTAssertEqual(got.map(\.0), ["c00000001", "null", "c00000002"])
        XCTAssertEqual(got[0].1, #"{"event_id":"e1","ts":5,"action":"click","content_id":"c00000001","user_id":"u1","server_ts":1234,"client_ip":"10.1.2.3"}"#)
        for (_, v) in got {
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(v.utf8)) as? [String: Any])
            XCTAssertEqual(json["server_ts"] as? Int, 1234)
            XCTAssertEqual(json["client_ip"] as? String, "10.1.2.3")
        }
    }

    /// Found by fuzzing (Fuzz/corpus/FuzzCollectBody/enriched_too_large.json): an event just under
    /// the size limit was accepted (202), and the split dead-lettered it as too_large once
    /// server_ts and client_ip had been added.
    func testAnEventTheEnrichmentPushesOverTheSizeLimitIsRefused() throws {
        let limit = 512
        let validator = try EventValidator(topology: Topology(actions: ["click"], topics: []), maxEventBytes: limit)
        let scanner = EventScanner(maxBytes: limit) // the split's first check
        let head = #"{"event_id":"e1","ts":5,"action":"click","content_id":"c00000001","user_id":"u1","pad":""#
        let clientIP = "2001:db8:85a3::8a2e:370:7334"
        // Items of every size up to the limit: each is refused, or its enriched form fits.
        var accepted = 0, refused = 0
        for size in (limit - 120)...limit {
            let item = head + String(repeating: "x", count: size - head.utf8.count - 2) + #""}"#
            XCTAssertEqual(item.utf8.count, size)
            let body = Array(item.utf8)
            var rejected: [Rejection] = []
            let batch = body.withUnsafeBytes { b in
                validator.validate(body: b, items: [ByteRange(start: 0, count: b.count)], serverTs: 1_700_000_000_123,
                                   clientIP: clientIP, rejected: &rejected)
            }
            if batch.count == 0 {
                XCTAssertEqual(rejected, [Rejection(index: 0, reason: "too_large")], "\(size) bytes")
                refused += 1
                continue
            }
            accepted += 1
            batch.forEach { _, value in
                do throws(ScanError) {
                    _ = try scanner.scan(value)
                } catch {
                    XCTFail("a \(size)-byte item is accepted, and the split dead-letters its \(value.count)-byte enriched form: \(error)")
                }
            }
        }
        XCTAssertGreaterThan(accepted, 0)
        XCTAssertGreaterThan(refused, 0)
    }
}

final class SpoolTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "strata-spool-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    static func batch(_ values: [String]) -> FramedBatch {
        var b = FramedBatch()
        for v in values {
            Frame.appendHeader(to: &b.bytes, keyCount: 1, valueCount: v.utf8.count)
            b.bytes.append(UInt8(ascii: "k"))
            b.bytes.append(contentsOf: v.utf8)
            b.count += 1
        }
        return b
    }

    func values(_ spool: Spool) throws -> [String] {
        var out: [String] = []
        for seg in spool.sealedSegments {
            _ = try spool.load(seg).withUnsafeBytes { p in
                Frame.forEach(in: p, verify: true) { _, v in out.append(String(decoding: v, as: UTF8.self)) }
            }
        }
        return out
    }

    func testConcurrentAppendsAreAllDurableInSegmentsAndSurviveReopen() async throws {
        let spool = try Spool(directory: dir, quotaBytes: 10 << 20, segmentBytes: 4096)
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                group.addTask { try? await spool.append(Self.batch(["event-\(i)-a", "event-\(i)-b"])) }
            }
        }
        await spool.sealActive()
        XCTAssertGreaterThan(spool.sealedSegments.count, 1, "4 KiB segments roll over")
        XCTAssertEqual(Set(try values(spool)).count, 400)
        let bytes = spool.bytes
        spool.close()

        let reopened = try Spool(directory: dir, quotaBytes: 10 << 20, segmentBytes: 4096)
        defer { reopened.close() }
        XCTAssertEqual(reopened.bytes, bytes)
        XCTAssertEqual(Set(try values(reopened)), Set((0..<200).flatMap { ["event-\($0)-a", "event-\($0)-b"] }))
    }

    func testATornTailIsCutOffOnOpen() async throws {
        let spool = try Spool(directory: dir, quotaBytes: 1 << 20)
        try await spool.append(Self.batch(["one", "two"]))
        await spool.sealActive()
        let seg = try XCTUnwrap(spool.sealedSegments.first)
        spool.close()
        // A crash in the middle of a write: half a frame at the end, and a frame whose bytes changed.
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: seg.path))
        handle.seekToEndOfFile()
        var torn = Self.batch(["three-never-acknowledged"]).bytes
        Frame.seal(&torn)
        handle.write(Data(torn.prefix(torn.count - 5)))
        handle.closeFile()

        let reopened = try Spool(directory: dir, quotaBytes: 1 << 20)
        defer { reopened.close() }
        XCTAssertEqual(try values(reopened), ["one", "two"])
        XCTAssertEqual(reopened.bytes, seg.bytes)
    }

    func testOneSpoolDirectoryServesOneProcessAtATime() throws {
        let spool = try Spool(directory: dir, quotaBytes: 1 << 20)
        XCTAssertThrowsError(try Spool(directory: dir, quotaBytes: 1 << 20)) { error in
            XCTAssertTrue("\(error)".contains("in use"), "\(error)")
        }
        spool.close()
        let again = try Spool(directory: dir, quotaBytes: 1 << 20)
        again.close()
    }

    func testQuotaRefusesAtOnceAndFreesOnRemove() async throws {
        let spool = try Spool(directory: dir, quotaBytes: 8192, segmentBytes: 4096)
        defer { spool.close() }
        let big = String(repeating: "x", count: 3000)
        try await spool.append(Self.batch([big]))
        try await spool.append(Self.batch([big]))
        do {
            try await spool.append(Self.batch([big]))
            XCTFail("the third append exceeds the quota")
        } catch {
            XCTAssertEqual(error, .full(quotaBytes: 8192))
        }
        await spool.sealActive()
        for seg in spool.sealedSegments { spool.remove(seg) }
        XCTAssertEqual(spool.bytes, 0)
        try await spool.append(Self.batch([big]))
    }
}

final class LimitTests: XCTestCase {
    func testTokenBucketAllowsBurstThenRefillsAtRate() {
        let now = LockedClock()
        let limiter = RateLimiter(rate: 2, burst: 3, clock: { now.value })
        XCTAssertNil(limiter.take("a"))
        XCTAssertNil(limiter.take("a"))
        XCTAssertNil(limiter.take("a"))
        XCTAssertEqual(limiter.take("a"), 1, "empty: one token is back in 0.5 s, rounded up to 1 s")
        XCTAssertNil(limiter.take("b"), "keys have buckets of their own")
        now.advance(seconds: 0.5)
        XCTAssertNil(limiter.take("a"))
        XCTAssertNotNil(limiter.take("a"))
        now.advance(seconds: 10)
        for _ in 0..<3 { XCTAssertNil(limiter.take("a")) }
        XCTAssertNotNil(limiter.take("a"), "the bucket never holds more than the burst")
    }

    func testForwardedForIsBelievedOnlyFromTrustedProxies() throws {
        let trusted = try TrustedProxies(["10.0.0.0/8", "::1"])
        XCTAssertEqual(ClientAddress.resolve(peer: "10.1.1.1", forwardedFor: "203.0.113.9", trusted: trusted), "203.0.113.9")
        XCTAssertEqual(ClientAddress.resolve(peer: "::1", forwardedFor: "1.1.1.1, 203.0.113.9, 10.2.2.2", trusted: trusted), "203.0.113.9",
                       "the right-most address that is not a trusted proxy")
        XCTAssertEqual(ClientAddress.resolve(peer: "192.0.2.1", forwardedFor: "203.0.113.9", trusted: trusted), "192.0.2.1",
                       "an untrusted peer's header is ignored")
        XCTAssertEqual(ClientAddress.resolve(peer: "10.1.1.1", forwardedFor: "\"},\"x\":1", trusted: trusted), "10.1.1.1",
                       "a value that is not an address is ignored (it would go into JSON)")
        XCTAssertEqual(ClientAddress.resolve(peer: nil, forwardedFor: nil, trusted: trusted), "unknown")
        XCTAssertThrowsError(try TrustedProxies(["10.0.0.0/33"]))
        XCTAssertThrowsError(try TrustedProxies(["example.com"]))
    }
}

final class LockedClock: @unchecked Sendable {
    private let lock = NSLock()
    private var nanos: UInt64 = 1_000_000_000
    var value: UInt64 { lock.lock(); defer { lock.unlock() }; return nanos }
    func advance(seconds: Double) { lock.lock(); nanos += UInt64(seconds * 1e9); lock.unlock() }
}

/// The browser SDK, run by node (on every machine of this project) against a stub browser.
final class SDKTests: XCTestCase {
    func testBrowserSDKBatchesRetriesAfterRetryAfterBeaconsOnPageHideAndSamplesUsers() throws {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let sdk = here.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources/StrataCollect/Server/sdk.js")
        let node = Process()
        node.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        node.arguments = ["node", here.appendingPathComponent("sdk.test.js").path, sdk.path]
        let out = Pipe()
        node.standardOutput = out
        node.standardError = out
        try node.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        node.waitUntilExit()
        XCTAssertEqual(node.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("sdk ok"), text)
    }
}
