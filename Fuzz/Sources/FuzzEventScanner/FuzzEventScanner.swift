// The split's event scanner (EventScanner) and router (SplitRouter), checked against the query
// library's row parser (JSONParser via Value.decodeRow): two JSON readers written apart, so each
// is the other's reference.
//
// Properties, for any bytes:
//  - neither traps, and an accepted event's ranges lie inside the input;
//  - what the scanner accepts, the row parser accepts, with the same field values;
//  - what the row parser rejects, the scanner rejects as a syntax error (not a schema error), and
//    what the row parser accepts is not malformed JSON to the scanner;
//  - the router dead-letters exactly what the scanner rejects, with the scanner's reason, and
//    routes or filters the rest by the decoded action and content id;
//  - a decoded row re-encodes (Value.jsonText) to JSON that decodes to the same text again;
//  - the query engine's slot decoding (RowBatch) accepts exactly what the row parser accepts, with
//    the same value at every path of its layout (nested parts and whole objects included).
import FuzzSupport
import StrataCore
import StrataQuery
import StrataSplit

private let actions = ["expose", "click", "play", "like", "share", "comment", "report"]
private let contentIdPattern = try! IdPattern(IdPattern.defaultContentId)
private let scanner = EventScanner()
private let router = SplitRouter(actions: actions, contentIdPattern: contentIdPattern)
private let layout = RowLayout(paths: [["event_id"], ["ts"], ["action"], ["content_id"], ["device"], ["device", "app_ver"],
                                       ["device", "os"], ["a", "b", "c"], ["a", "b"]])

/// The test run on each input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEventScanner(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    let row = Value.decodeRow(bytes)
    checkSlots(bytes, row)
    let scanned: ScannedEvent
    do {
        scanned = try scanner.scan(bytes)
    } catch {
        checkRejected(error, bytes, row)
        return 0
    }
    checkAccepted(scanned, bytes, row)
    return 0
}

private func checkSlots(_ bytes: UnsafeRawBufferPointer, _ row: [String: Value]?) {
    var batch = RowBatch(layout: layout)
    let accepted = batch.append(json: bytes)
    require(accepted == (row != nil), "slot decoding \(accepted ? "accepts" : "rejects") what the row parser does not: \(show(bytes))")
    guard let row else { return }
    for (slot, path) in layout.paths.enumerated() {
        var v: Value = .object(row)
        for key in path { v = v[key] }
        require(batch[0, slot] == v, "slot \(path) holds \(batch[0, slot]), the row parser \(v): \(show(bytes))")
    }
}

private func checkAccepted(_ ev: ScannedEvent, _ bytes: UnsafeRawBufferPointer, _ row: [String: Value]?) {
    let strings: [(String, ByteRange?)] = [("event_id", ev.eventId), ("action", ev.action), ("content_id", ev.contentId),
                                            ("user_id", ev.userId), ("strategy", ev.strategy)]
    for (_, range) in strings {
        guard let range else { continue }
        require(range.start >= 0 && range.count >= 0 && range.end <= bytes.count,
                "range \(range) outside the \(bytes.count)-byte input \(show(bytes))")
    }
    require(ev.ts >= 0 && (ev.durationMs ?? 0) >= 0, "negative ts or duration_ms accepted: \(show(bytes))")

    guard let row else { fatalError("the scanner accepts what the row parser rejects: \(show(bytes))") }
    for (name, range) in strings {
        guard let range else {
            require(row[name] == nil || row[name] == .null, "\(name) is absent to the scanner, \(row[name]!) to the row parser: \(show(bytes))")
            continue
        }
        let decoded = EventScanner.decodeString(bytes, range)
        require(decoded.withUnsafeBytes { EventScanner.decodedEquals(bytes, range, $0) },
                "decodedEquals disagrees with decodeString on \(name): \(show(bytes))")
        guard case .string(let s)? = row[name] else {
            fatalError("\(name) is a string to the scanner, \(String(describing: row[name])) to the row parser: \(show(bytes))")
        }
        require(Array(s.utf8) == decoded, "\(name) decodes to \(decoded) in the scanner, \(Array(s.utf8)) in the row parser: \(show(bytes))")
        if !ev.hasEscapes {
            require(decoded.elementsEqual(range.bytes(in: bytes)), "\(name) has escapes but hasEscapes is false: \(show(bytes))")
        }
    }
    require(row["ts"] == .int(ev.ts), "ts is \(ev.ts) to the scanner, \(String(describing: row["ts"])) to the row parser: \(show(bytes))")
    if let d = ev.durationMs {
        require(row["duration_ms"] == .int(d), "duration_ms is \(d) to the scanner, \(String(describing: row["duration_ms"])) to the row parser: \(show(bytes))")
    } else {
        require(row["duration_ms"] == nil || row["duration_ms"] == .null, "duration_ms is absent to the scanner: \(show(bytes))")
    }
    let eventId = EventScanner.decodeString(bytes, ev.eventId)
    require((1...EventScanner.maxEventIdBytes).contains(eventId.count), "event_id of \(eventId.count) bytes accepted: \(show(bytes))")

    // The router: routes or filters it, by the decoded action and content id.
    let action = EventScanner.decodeString(bytes, ev.action)
    let contentId = EventScanner.decodeString(bytes, ev.contentId)
    let outcome = router.route(bytes)
    guard let index = actions.firstIndex(where: { Array($0.utf8) == action }) else {
        guard case .deadLetter(let reason, _) = outcome, reason == SplitRouter.unknownAction else {
            fatalError("an undeclared action is not dead-lettered as unknown_action but \(outcome): \(show(bytes))")
        }
        return
    }
    let matches = contentId.withUnsafeBytes { contentIdPattern.matches($0) }
    switch outcome {
    case .route(let a, let key):
        require(matches && a == index && key == ev.contentId && !ev.hasEscapes, "wrong route \(outcome): \(show(bytes))")
    case .routeDecoded(let a, let key):
        require(matches && a == index && key == contentId, "wrong route \(outcome): \(show(bytes))")
    case .filter(let reason):
        require(!matches && reason == SplitRouter.invalidContentId, "wrong filter \(outcome): \(show(bytes))")
    case .deadLetter:
        fatalError("an accepted event with a declared action is dead-lettered (\(outcome)): \(show(bytes))")
    }
    checkRoundTrip(row, bytes)
}

private func checkRejected(_ e: ScanError, _ bytes: UnsafeRawBufferPointer, _ row: [String: Value]?) {
    let syntax: Bool
    switch e {
    case .empty, .tooLarge, .notAnObject, .malformedJSON, .invalidUTF8, .tooDeep: syntax = true
    default: syntax = false
    }
    if let row {
        switch e {
        case .empty, .notAnObject, .malformedJSON:
            fatalError("the scanner says \(e) about JSON the row parser accepts: \(show(bytes))")
        default: break
        }
        checkRoundTrip(row, bytes)
    } else {
        require(syntax, "the scanner reports a schema problem (\(e)) in what the row parser rejects as JSON: \(show(bytes))")
    }
    require(!e.reason.isEmpty && !e.detail.isEmpty, "a rejection without reason or detail: \(show(bytes))")
    guard case .deadLetter(let reason, _) = router.route(bytes), reason == e.reason else {
        fatalError("the router does not dead-letter a rejected event with reason \(e.reason): \(show(bytes))")
    }
}

/// A decoded row written back as JSON decodes again, to a row that writes the same text.
private func checkRoundTrip(_ row: [String: Value], _ bytes: UnsafeRawBufferPointer) {
    let text = Value.object(row).jsonText
    guard let again = Value.decodeRow(text) else {
        fatalError("the row parser rejects its own output \(text.debugDescription) (input \(show(bytes)))")
    }
    let text2 = Value.object(again).jsonText
    require(text2 == text, "round trip changed the row: \(text.debugDescription) → \(text2.debugDescription) (input \(show(bytes)))")
}
