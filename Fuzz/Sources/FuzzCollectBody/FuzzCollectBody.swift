// The collector's request body path: BodySplitter (JSON array or NDJSON into items), then
// EventValidator (the split's rule per item, enrichment, framing).
//
// Properties, for any body:
//  - the splitter returns at most maxItems in-bounds, trimmed item ranges, or a BodyError;
//  - every item is either rejected (by index, in order, with the reason the split's router gives
//    it) or framed, never both or neither;
//  - every framed event is keyed by its decoded content_id and its value is the item enriched
//    with server_ts and client_ip, which the split (a router with the same event size limit)
//    routes or filters: the gateway never accepts what the split would dead-letter.
import FuzzSupport
import StrataCollect
import StrataCore
import StrataSplit

private let actions = ["expose", "click", "play", "like", "share", "comment", "report"]
private let topology = Topology(actions: actions, contentIdPattern: IdPattern.defaultContentId, topics: [])
// A small event limit, so the fuzzer reaches it with short inputs.
private let maxEventBytes = 512
private let maxItems = 16
private let validator = try! EventValidator(topology: topology, maxEventBytes: maxEventBytes)
private let router = try! SplitRouter(topology: topology, maxEventBytes: maxEventBytes)
private let serverTs: Int64 = 1_700_000_000_123
private let clientIP = "2001:db8:85a3::8a2e:370:7334"

/// The test run on each input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCollectBody(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let body = fuzzInput(data, size)
    let items: [ByteRange]
    do {
        items = try BodySplitter.split(body, maxItems: maxItems)
    } catch {
        require(!error.reason.isEmpty && !error.description.isEmpty, "a body error without reason: \(show(body))")
        return 0
    }
    require(!items.isEmpty && items.count <= maxItems, "\(items.count) items: \(show(body))")
    for r in items {
        require(r.start >= 0 && r.count >= 0 && r.end <= body.count, "item \(r) outside the \(body.count)-byte body \(show(body))")
        if r.count > 0 {
            require(!isSpace(body[r.start]) && !isSpace(body[r.end - 1]), "item \(r) not trimmed: \(show(body))")
        }
    }

    var rejected: [Rejection] = []
    let batch = validator.validate(body: body, items: items, serverTs: serverTs, clientIP: clientIP, rejected: &rejected)
    require(rejected.count + batch.count == items.count,
            "\(items.count) items, \(rejected.count) rejected, \(batch.count) framed: \(show(body))")
    require(zip(rejected, rejected.dropFirst()).allSatisfy { $0.index < $1.index } && rejected.allSatisfy { items.indices.contains($0.index) },
            "rejections out of order or range: \(rejected) (body \(show(body)))")

    // The frames: u32 key length, u32 value length, u64 checksum, key, value (little-endian).
    var frames: [(key: [UInt8], value: [UInt8])] = []
    batch.bytes.withUnsafeBytes { p in
        var at = 0
        while at + 16 <= p.count {
            let k = Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
            let v = Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self)))
            require(at + 16 + k + v <= p.count, "a frame runs past the batch (body \(show(body)))")
            frames.append((Array(p[(at + 16)..<(at + 16 + k)]), Array(p[(at + 16 + k)..<(at + 16 + k + v)])))
            at += 16 + k + v
        }
        require(at == p.count, "bytes after the last frame (body \(show(body)))")
    }
    require(frames.count == batch.count, "\(frames.count) frames for a count of \(batch.count) (body \(show(body)))")

    let rejectedIndex = Dictionary(uniqueKeysWithValues: rejected.map { ($0.index, $0.reason) })
    var next = 0
    for (index, item) in items.enumerated() {
        let bytes = item.bytes(in: body)
        let outcome = router.route(bytes)
        // The split judges the enriched event: one the additions push over the limit is too large.
        let expected: String?
        if bytes.count - 1 + suffixBytes > maxEventBytes {
            expected = "too_large"
        } else if case .deadLetter(let reason, _) = outcome {
            expected = reason
        } else {
            expected = nil
        }
        require(rejectedIndex[index] == expected,
                "item \(index) is \(rejectedIndex[index].map { "refused as " + $0 } ?? "accepted"), the split says \(outcome) (item \(show(bytes)))")
        if expected != nil { continue }
        let frame = frames[next]
        next += 1
        let value = frame.value
        // The value is the item with the two fields added before its closing brace.
        require(value.count == bytes.count - 1 + suffixBytes && value.starts(with: bytes.dropLast())
                    && value.last == UInt8(ascii: "}") && bytes.last == UInt8(ascii: "}"),
                "item \(index) framed as \(String(decoding: value, as: UTF8.self).debugDescription) (item \(show(bytes)))")
        let enriched = value.withUnsafeBytes { router.route($0) }
        switch enriched {
        case .deadLetter(let reason, let detail):
            fatalError("the enriched event of item \(index) is dead-lettered by the split: \(reason) \(detail) (item \(show(bytes)))")
        case .route(_, let key):
            require(Array(value[key.start..<key.end]) == frame.key, "frame key is not the content_id (item \(show(bytes)))")
        case .routeDecoded(_, let key):
            require(key == frame.key, "frame key is not the decoded content_id (item \(show(bytes)))")
        case .filter:
            let event = try! value.withUnsafeBytes { try EventScanner(maxBytes: Int.max).scan($0) }
            let contentId = value.withUnsafeBytes { EventScanner.decodeString($0, event.contentId) }
            require(contentId == frame.key, "frame key is not the decoded content_id (item \(show(bytes)))")
        }
    }
    return 0
}

/// `,"server_ts":<ms>,"client_ip":"<ip>"}`
private let suffixBytes = #","server_ts":"#.utf8.count + String(serverTs).utf8.count + #","client_ip":""#.utf8.count
    + clientIP.utf8.count + 2

private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }
