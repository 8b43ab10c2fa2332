import StrataDWM
import StrataDims

/// Serializes DWM and DWS rows as the JSON of DESIGN.md's record contracts, by appending bytes
/// (no Foundation JSON on the emission path). Dimension objects are encoded once per emission.
struct RowEncoder {
    let actions: [String]
    let playIndex: Int?
    private var contentJSON: [String: [UInt8]] = [:]
    private var users: [String: UserDim] = [:]
    private let actionKeys: [[UInt8]]

    init(actions: [String]) {
        self.actions = actions
        playIndex = actions.firstIndex(of: "play")
        actionKeys = actions.map { Array("\"\($0)\":".utf8) }
    }

    /// Contents are pre-encoded (many rows share one); user profiles are written straight into
    /// each row (a cell's user is usually in that one row, so pre-encoding would only allocate).
    mutating func setDimensions(contents: [String: ContentDim], users: [String: UserDim]) {
        contentJSON.removeAll(keepingCapacity: true)
        for (id, c) in contents {
            var b: [UInt8] = []
            b.append(contentsOf: #"{"title":"#.utf8); appendString(&b, c.title)
            b.append(contentsOf: #","category":"#.utf8); appendString(&b, c.category)
            b.append(contentsOf: #","author_id":"#.utf8); appendString(&b, c.authorId)
            b.append(contentsOf: #","region":"#.utf8); appendString(&b, c.region)
            b.append(UInt8(ascii: "}"))
            contentJSON[id] = b
        }
        self.users = users
    }

    private func appendUser(_ b: inout [UInt8], _ id: String) {
        guard let u = users[id] else { b.append(contentsOf: "null".utf8); return }
        b.append(contentsOf: #"{"gender":"#.utf8); appendString(&b, u.gender)
        b.append(contentsOf: #","age_band":"#.utf8); appendString(&b, u.ageBand)
        b.append(contentsOf: #","province":"#.utf8); appendString(&b, u.province)
        b.append(contentsOf: #","city_tier":"#.utf8); appendInt(&b, Int64(u.cityTier))
        b.append(UInt8(ascii: "}"))
    }

    func hasContent(_ id: String) -> Bool { contentJSON[id] != nil }

    func encode(_ row: DWMRow, emittedAt: Int64, into b: inout [UInt8]) {
        b.append(contentsOf: #"{"minute":"#.utf8); appendInt(&b, row.minute)
        b.append(contentsOf: #","content_id":"#.utf8); appendString(&b, row.contentId)
        b.append(contentsOf: #","user_id":"#.utf8); appendString(&b, row.userId)
        appendMetrics(&b, row.counts, playMs: row.playMs)
        b.append(contentsOf: #","strategy":"#.utf8)
        if let s = row.strategy { appendString(&b, s) } else { b.append(contentsOf: "null".utf8) }
        b.append(contentsOf: #","content":"#.utf8); b.append(contentsOf: contentJSON[row.contentId] ?? Array("null".utf8))
        b.append(contentsOf: #","user":"#.utf8); appendUser(&b, row.userId)
        appendTail(&b, isFinal: row.isFinal, rev: row.rev, emittedAt: emittedAt)
    }

    func encode(_ row: DWSRow, emittedAt: Int64, into b: inout [UInt8]) {
        b.append(contentsOf: #"{"minute":"#.utf8); appendInt(&b, row.minute)
        b.append(contentsOf: #","content_id":"#.utf8); appendString(&b, row.contentId)
        appendMetrics(&b, row.counts, playMs: row.playMs)
        b.append(contentsOf: #","uv":"#.utf8); appendInt(&b, row.uv)
        b.append(contentsOf: #","content":"#.utf8); b.append(contentsOf: contentJSON[row.contentId] ?? Array("null".utf8))
        appendTail(&b, isFinal: row.isFinal, rev: row.rev, emittedAt: emittedAt)
    }

    private func appendMetrics(_ b: inout [UInt8], _ counts: [Int64], playMs: Int64) {
        for (i, key) in actionKeys.enumerated() {
            b.append(UInt8(ascii: ","))
            b.append(contentsOf: key)
            appendInt(&b, counts[i])
            if i == playIndex { b.append(contentsOf: #","play_ms":"#.utf8); appendInt(&b, playMs) }
        }
    }

    private func appendTail(_ b: inout [UInt8], isFinal: Bool, rev: Int64, emittedAt: Int64) {
        b.append(contentsOf: isFinal ? #","final":true,"rev":"#.utf8 : #","final":false,"rev":"#.utf8)
        appendInt(&b, rev)
        b.append(contentsOf: #","emitted_at":"#.utf8); appendInt(&b, emittedAt)
        b.append(UInt8(ascii: "}"))
    }
}

func appendInt(_ b: inout [UInt8], _ v: Int64) {
    if v == 0 { b.append(UInt8(ascii: "0")); return }
    var x = v.magnitude
    if v < 0 { b.append(UInt8(ascii: "-")) }
    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                 UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var n = 0
    withUnsafeMutableBytes(of: &digits) { d in
        while x > 0 { d[n] = UInt8(ascii: "0") + UInt8(x % 10); x /= 10; n += 1 }
        for i in stride(from: n - 1, through: 0, by: -1) { b.append(d[i]) }
    }
}

/// A JSON string literal (RFC 8259 escaping).
func appendString(_ b: inout [UInt8], _ s: String) {
    b.append(UInt8(ascii: "\""))
    // Ids and dimension values rarely need escaping: copy them in one go when they don't.
    let plain = s.utf8.withContiguousStorageIfAvailable { u -> Bool in
        guard !u.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else { return false }
        b.append(contentsOf: u)
        return true
    } ?? false
    if plain { b.append(UInt8(ascii: "\"")); return }
    for c in s.utf8 {
        switch c {
        case UInt8(ascii: "\""): b.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
        case UInt8(ascii: "\\"): b.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
        case 0x0A: b.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
        case 0x0D: b.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
        case 0x09: b.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
        case 0..<0x20:
            let hex = Array("0123456789abcdef".utf8)
            b.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(c >> 4)], hex[Int(c & 15)]])
        default: b.append(c)
        }
    }
    b.append(UInt8(ascii: "\""))
}
