import StrataCore
import StrataDWM
import StrataDims

/// Serializes DWM and DWS rows as the JSON of DESIGN.md's record contracts, by appending bytes
/// (no Foundation JSON on the emission path). Dimension objects are encoded once per emission.
struct RowEncoder {
    let actions: [String]
    let playIndex: Int?
    /// By the emission's content number (see `RowEnricher`): the content's JSON, nil when unknown.
    private var contentJSON: [[UInt8]?] = []
    /// By the emission's user number: the user's profile, nil when unknown.
    private var users: [UserDim?] = []
    private let actionKeys: [[UInt8]]

    init(actions: [String]) {
        self.actions = actions
        playIndex = actions.firstIndex(of: "play")
        actionKeys = actions.map { Array("\"\($0)\":".utf8) }
    }

    /// Contents are pre-encoded (many rows share one); user profiles are written straight into
    /// each row (a cell's user is usually in that one row, so pre-encoding would only allocate).
    mutating func setDimensions(contents: [ContentDim?], users: [UserDim?]) {
        contentJSON = contents.map { c in
            guard let c else { return nil }
            var b: [UInt8] = []
            b.append(contentsOf: #"{"title":"#.utf8); JSONString.append(c.title, to: &b)
            b.append(contentsOf: #","category":"#.utf8); JSONString.append(c.category, to: &b)
            b.append(contentsOf: #","author_id":"#.utf8); JSONString.append(c.authorId, to: &b)
            b.append(contentsOf: #","region":"#.utf8); JSONString.append(c.region, to: &b)
            b.append(UInt8(ascii: "}"))
            return b
        }
        self.users = users
    }

    private func appendUser(_ b: inout [UInt8], _ user: Int32) {
        guard let u = users[Int(user)] else { b.append(contentsOf: "null".utf8); return }
        b.append(contentsOf: #"{"gender":"#.utf8); JSONString.append(u.gender, to: &b)
        b.append(contentsOf: #","age_band":"#.utf8); JSONString.append(u.ageBand, to: &b)
        b.append(contentsOf: #","province":"#.utf8); JSONString.append(u.province, to: &b)
        b.append(contentsOf: #","city_tier":"#.utf8); appendInt(&b, Int64(u.cityTier))
        b.append(UInt8(ascii: "}"))
    }

    private func appendContent(_ b: inout [UInt8], _ content: Int32) {
        if let json = contentJSON[Int(content)] { b.append(contentsOf: json) } else { b.append(contentsOf: "null".utf8) }
    }

    func hasContent(_ content: Int32) -> Bool { contentJSON[Int(content)] != nil }

    func encode(_ row: DWMRow, content: Int32, user: Int32, emittedAt: Int64, into b: inout [UInt8]) {
        b.append(contentsOf: #"{"minute":"#.utf8); appendInt(&b, row.minute)
        b.append(contentsOf: #","content_id":"#.utf8); JSONString.append(row.contentId, to: &b)
        b.append(contentsOf: #","user_id":"#.utf8); JSONString.append(row.userId, to: &b)
        appendMetrics(&b, row.counts, playMs: row.playMs)
        b.append(contentsOf: #","strategy":"#.utf8)
        if let strategy = row.strategy { JSONString.append(strategy, to: &b) } else { b.append(contentsOf: "null".utf8) }
        b.append(contentsOf: #","content":"#.utf8); appendContent(&b, content)
        b.append(contentsOf: #","user":"#.utf8); appendUser(&b, user)
        appendTail(&b, isFinal: row.isFinal, rev: row.rev, emittedAt: emittedAt)
    }

    func encode(_ row: DWSRow, content: Int32, emittedAt: Int64, into b: inout [UInt8]) {
        b.append(contentsOf: #"{"minute":"#.utf8); appendInt(&b, row.minute)
        b.append(contentsOf: #","content_id":"#.utf8); JSONString.append(row.contentId, to: &b)
        appendMetrics(&b, row.counts, playMs: row.playMs)
        b.append(contentsOf: #","uv":"#.utf8); appendInt(&b, row.uv)
        b.append(contentsOf: #","content":"#.utf8); appendContent(&b, content)
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

