import StrataCore
import StrataDWM
import StrataDims

/// Serializes DWM and DWS rows as the JSON of DESIGN.md's record contracts, by appending bytes
/// to a ``RowBuffer`` (no Foundation JSON on the emission path). Dimension objects are encoded
/// once per emission.
struct RowEncoder {
    let playIndex: Int?
    /// By the emission's content number (see `RowEnricher`): the content's JSON, nil when unknown.
    private var contentJSON: [[UInt8]?] = []
    /// By the emission's user number: the user's row object, nil when unknown.
    private var users: [UserRowObject?] = []
    /// `,"<action>":` for every action, back to back (`actionKeyEnds[i]` ends action i's), so a
    /// row's metric keys come from one buffer.
    private let actionKeys: [UInt8]
    private let actionKeyEnds: [Int]

    init(actions: [String]) {
        playIndex = actions.firstIndex(of: "play")
        var keys: [UInt8] = [], ends: [Int] = []
        for a in actions {
            keys += Array(",\"\(a)\":".utf8)
            ends.append(keys.count)
        }
        actionKeys = keys
        actionKeyEnds = ends
    }

    /// Contents are pre-encoded (many rows share one); users come from the cache as their row
    /// objects, copied into each row.
    mutating func setDimensions(contents: [ContentDim?], users: [UserRowObject?]) {
        let b = RowBuffer(capacity: 256)
        contentJSON = contents.map { c in
            guard let c else { return nil }
            b.removeAll()
            b.append(#"{"title":"#); b.appendJSONString(c.title)
            b.append(#","category":"#); b.appendJSONString(c.category)
            b.append(#","author_id":"#); b.appendJSONString(c.authorId)
            b.append(#","region":"#); b.appendJSONString(c.region)
            b.append(UInt8(ascii: "}"))
            return Array(b.bytes)
        }
        self.users = users
    }

    private func appendUser(_ b: RowBuffer, _ user: Int32) {
        if let u = users[Int(user)] { b.append(u.json) } else { b.append("null") }
    }

    private func appendContent(_ b: RowBuffer, _ content: Int32) {
        if let json = contentJSON[Int(content)] { b.append(json) } else { b.append("null") }
    }

    func hasContent(_ content: Int32) -> Bool { contentJSON[Int(content)] != nil }

    func encode(_ row: DWMRow, content: Int32, user: Int32, emittedAt: Int64, into b: RowBuffer) {
        b.append(#"{"minute":"#); b.appendInt(row.minute)
        b.append(#","content_id":"#); b.appendJSONString(row.contentId)
        b.append(#","user_id":"#); b.appendJSONString(row.userId)
        appendMetrics(b, row.counts, playMs: row.playMs)
        b.append(#","strategy":"#)
        if let strategy = row.strategy { b.appendJSONString(strategy) } else { b.append("null") }
        b.append(#","content":"#); appendContent(b, content)
        b.append(#","user":"#); appendUser(b, user)
        appendTail(b, isFinal: row.isFinal, rev: row.rev, emittedAt: emittedAt)
    }

    func encode(_ row: DWSRow, content: Int32, emittedAt: Int64, into b: RowBuffer) {
        b.append(#"{"minute":"#); b.appendInt(row.minute)
        b.append(#","content_id":"#); b.appendJSONString(row.contentId)
        appendMetrics(b, row.counts, playMs: row.playMs)
        b.append(#","uv":"#); b.appendInt(row.uv)
        b.append(#","content":"#); appendContent(b, content)
        appendTail(b, isFinal: row.isFinal, rev: row.rev, emittedAt: emittedAt)
    }

    private func appendMetrics(_ b: RowBuffer, _ counts: [Int64], playMs: Int64) {
        actionKeys.withUnsafeBytes { keys in
            var start = 0
            for i in 0..<actionKeyEnds.count {
                let end = actionKeyEnds[i]
                b.append(UnsafeRawBufferPointer(rebasing: keys[start..<end]))
                b.appendInt(counts[i])
                if i == playIndex { b.append(#","play_ms":"#); b.appendInt(playMs) }
                start = end
            }
        }
    }

    private func appendTail(_ b: RowBuffer, isFinal: Bool, rev: Int64, emittedAt: Int64) {
        b.append(isFinal ? #","final":true,"rev":"# : #","final":false,"rev":"#)
        b.appendInt(rev)
        b.append(#","emitted_at":"#); b.appendInt(emittedAt)
        b.append(UInt8(ascii: "}"))
    }
}
