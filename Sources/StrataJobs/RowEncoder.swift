import StrataCore
import StrataDWM
import StrataDims

/// Serializes DWM and DWS rows as the JSON of DESIGN.md's record contracts, by appending bytes
/// to a ``RowBuffer`` (no Foundation JSON on the emission path). Dimension objects are encoded
/// once per emission.
struct RowEncoder {
    let playIndex: Int?
    /// By the batch's content number: the content's JSON, nil when unknown.
    private var contentJSON: [[UInt8]?] = []
    /// The user row objects found, back to back; `userEnds[n]` ends user n's (its start is
    /// `userStarts[n]`), -1 when unknown. One buffer for a batch's users instead of one
    /// reference-counted array per user, copied into a row without retain or release.
    private let userBytes = RowBuffer(capacity: 4_096)
    private var userStarts: [Int32] = [], userEnds: [Int32] = []
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

    /// Contents are pre-encoded (many rows share one).
    mutating func setContents(_ contents: [ContentDim?]) {
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
    }

    /// Forgets the last batch's users; `count` users are numbered from 0, all unknown so far.
    mutating func beginUsers(count: Int) {
        userBytes.removeAll(keepingCapacityUpTo: 32 << 20)
        userStarts = [Int32](repeating: -1, count: count)
        userEnds = [Int32](repeating: -1, count: count)
    }

    /// User `n`'s row object, as the cache found it.
    mutating func setUser(_ n: Int, _ u: UserRowObject) {
        u.withRowObjectMembers { members in
            precondition(userBytes.count + members.count < Int(Int32.max), "a batch's user objects exceed 2 GiB")
            userStarts[n] = Int32(userBytes.count)
            userBytes.append(UInt8(ascii: "{"))
            userBytes.append(members)
            userEnds[n] = Int32(userBytes.count)
        }
    }

    /// True when the dimensions set are those of a batch with these many distinct ids.
    func matches(contents: Int, users: Int) -> Bool { contentJSON.count == contents && userEnds.count == users }

    private func appendUser(_ b: RowBuffer, _ user: UInt32) {
        let end = Int(userEnds[Int(user)])
        guard end >= 0 else { b.append("null"); return }
        let start = Int(userStarts[Int(user)])
        b.append(UnsafeRawBufferPointer(rebasing: userBytes.bytes[start..<end]))
    }

    private func appendContent(_ b: RowBuffer, _ content: UInt32) {
        if let json = contentJSON[Int(content)] { b.append(json) } else { b.append("null") }
    }

    func hasContent(_ content: UInt32) -> Bool { contentJSON[Int(content)] != nil }

    func encode(_ row: BatchDWMRow, emittedAt: Int64, into b: RowBuffer) {
        b.append(#"{"minute":"#); b.appendInt(row.minute)
        b.append(#","content_id":"#); b.appendJSONString(row.contentId)
        b.append(#","user_id":"#); b.appendJSONString(row.userId)
        appendMetrics(b, row.counts, playMs: row.playMs)
        b.append(#","strategy":"#)
        if let strategy = row.strategy { b.appendJSONString(strategy) } else { b.append("null") }
        b.append(#","content":"#); appendContent(b, row.content)
        b.append(#","user":"#); appendUser(b, row.user)
        appendTail(b, isFinal: row.isFinal, rev: row.rev, emittedAt: emittedAt)
    }

    func encode(_ row: BatchDWSRow, emittedAt: Int64, into b: RowBuffer) {
        b.append(#"{"minute":"#); b.appendInt(row.minute)
        b.append(#","content_id":"#); b.appendJSONString(row.contentId)
        appendMetrics(b, row.counts, playMs: row.playMs)
        b.append(#","uv":"#); b.appendInt(row.uv)
        b.append(#","content":"#); appendContent(b, row.content)
        appendTail(b, isFinal: row.isFinal, rev: row.rev, emittedAt: emittedAt)
    }

    private func appendMetrics(_ b: RowBuffer, _ counts: UnsafeBufferPointer<Int64>, playMs: Int64) {
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
