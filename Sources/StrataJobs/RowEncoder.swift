import StrataCore
import StrataDWM
import StrataDims

/// Serializes DWM and DWS rows as the JSON of DESIGN.md's record contracts, by appending bytes
/// to a ``RowBuffer`` (no Foundation JSON on the emission path). Dimension objects are encoded
/// once per emission.
struct RowEncoder {
    let playIndex: Int?
    /// By the batch's content number: the content's row object, or none when unknown.
    private var contents = ObjectTable()
    /// By the batch's user number: the user's row object, as the cache found it, or none.
    private var users = ObjectTable()
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
    mutating func setContents(_ found: [ContentDim?]) {
        contents.reset(count: found.count)
        for (n, c) in found.enumerated() {
            guard let c else { continue }
            contents.set(n) { $0.append(DimJSON.dwmContentObject(c)) }
        }
    }

    /// Forgets the last batch's users; `count` users are numbered from 0, all unknown so far.
    mutating func beginUsers(count: Int) { users.reset(count: count) }

    /// User `n`'s row object, from its members as the cache lends them (``UserRowObject/withRowObjectMembers(_:)``).
    mutating func setUser(_ n: Int, members: UnsafeRawBufferPointer) {
        users.set(n) { b in
            b.append(UInt8(ascii: "{"))
            b.append(members)
        }
    }

    /// True when the dimensions set are those of a batch with these many distinct ids.
    func matches(contents: Int, users: Int) -> Bool { self.contents.count == contents && self.users.count == users }

    func hasContent(_ content: UInt32) -> Bool { contents.has(Int(content)) }

    func encode(_ row: BatchDWMRow, emittedAt: Int64, into b: RowBuffer) {
        b.append(#"{"minute":"#); b.appendInt(row.minute)
        b.append(#","content_id":"#); b.appendJSONString(row.contentId)
        b.append(#","user_id":"#); b.appendJSONString(row.userId)
        appendMetrics(b, row.counts, playMs: row.playMs)
        b.append(#","strategy":"#)
        if let strategy = row.strategy { b.appendJSONString(strategy) } else { b.append("null") }
        b.append(#","content":"#); contents.append(Int(row.content), to: b)
        b.append(#","user":"#); users.append(Int(row.user), to: b)
        appendTail(b, isFinal: row.isFinal, rev: row.rev, emittedAt: emittedAt)
    }

    func encode(_ row: BatchDWSRow, emittedAt: Int64, into b: RowBuffer) {
        b.append(#"{"minute":"#); b.appendInt(row.minute)
        b.append(#","content_id":"#); b.appendJSONString(row.contentId)
        appendMetrics(b, row.counts, playMs: row.playMs)
        b.append(#","uv":"#); b.appendInt(row.uv)
        b.append(#","content":"#); contents.append(Int(row.content), to: b)
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

/// JSON objects numbered from 0, back to back in one buffer (`ends[n]` ends object n's, which
/// starts at `starts[n]`; -1 when there is none): one buffer for a batch's objects instead of one
/// reference-counted array each, copied into a row without retain or release.
private struct ObjectTable {
    private let bytes = RowBuffer(capacity: 4_096)
    private var starts: [Int32] = [], ends: [Int32] = []

    var count: Int { ends.count }

    /// Forgets the objects; `count` are numbered from 0, none set so far.
    mutating func reset(count: Int) {
        bytes.removeAll(keepingCapacityUpTo: 32 << 20)
        starts = [Int32](repeating: -1, count: count)
        ends = [Int32](repeating: -1, count: count)
    }

    /// Object `n` is what `write` appends.
    mutating func set(_ n: Int, _ write: (RowBuffer) -> Void) {
        starts[n] = Int32(bytes.count)
        write(bytes)
        precondition(bytes.count < Int(Int32.max), "a batch's dimension objects exceed 2 GiB")
        ends[n] = Int32(bytes.count)
    }

    func has(_ n: Int) -> Bool { ends[n] >= 0 }

    /// Object `n`, or `null` when there is none.
    func append(_ n: Int, to b: RowBuffer) {
        let end = Int(ends[n])
        guard end >= 0 else { b.append("null"); return }
        b.append(UnsafeRawBufferPointer(rebasing: bytes.bytes[Int(starts[n])..<end]))
    }
}
