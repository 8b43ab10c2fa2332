import StrataCore

/// The compact JSON of a dimension, written and read without Foundation: the Redis tier decodes
/// up to a million of these per window close, and JSONDecoder costs microseconds each.
///
/// Values are flat objects with the snake_case column names (the same shape `Codable` produces):
/// `{"content_id":"c00000001","title":"…","category":"game","author_id":"a000001","region":"Guangdong","status":"published","publish_ts":1700000000000}`
/// `{"user_id":"u000000001","gender":"f","age_band":"18-24","province":"Guangdong","city_tier":2}`
/// The reader accepts keys in any order and skips unknown keys; a missing field, a wrong type or
/// broken JSON yields `nil` (the caller treats the entry as absent).
public enum DimJSON {
    // MARK: Encoding

    public static func encode(_ c: ContentDim) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96 + c.title.utf8.count)
        out.append(UInt8(ascii: "{"))
        field(&out, "content_id", c.contentId, first: true)
        field(&out, "title", c.title)
        field(&out, "category", c.category)
        field(&out, "author_id", c.authorId)
        field(&out, "region", c.region)
        field(&out, "status", c.status)
        field(&out, "publish_ts", c.publishTs)
        out.append(UInt8(ascii: "}"))
        return out
    }

    public static func encode(_ u: UserDim) -> [UInt8] { encodeMarkingMembers(u).text }

    /// ``encode(_:)-(UserDim)``, and where the members after `user_id` begin (see ``UserRowObject``).
    static func encodeMarkingMembers(_ u: UserDim) -> (text: [UInt8], membersStart: Int) {
        var out: [UInt8] = []
        out.reserveCapacity(96)
        out.append(UInt8(ascii: "{"))
        field(&out, "user_id", u.userId, first: true)
        out.append(UInt8(ascii: ","))
        let membersStart = out.count
        field(&out, "gender", u.gender, first: true)
        field(&out, "age_band", u.ageBand)
        field(&out, "province", u.province)
        field(&out, "city_tier", Int64(u.cityTier))
        out.append(UInt8(ascii: "}"))
        return (out, membersStart)
    }

    /// The `content` object of a DWM/DWS row: `{"title":…,"category":…,"author_id":…,"region":…}`.
    public static func dwmContentObject(_ c: ContentDim) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        field(&out, "title", c.title, first: true)
        field(&out, "category", c.category)
        field(&out, "author_id", c.authorId)
        field(&out, "region", c.region)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The `user` object of a DWM row: `{"gender":…,"age_band":…,"province":…,"city_tier":…}`,
    /// the members of the user's cached JSON after `user_id` (written once, there).
    public static func dwmUserObject(_ u: UserDim) -> [UInt8] { UserRowObject(u).json }

    private static func field(_ out: inout [UInt8], _ key: StaticString, _ value: String, first: Bool = false) {
        key_(&out, key, first)
        JSONString.append(value, to: &out)
    }

    private static func field(_ out: inout [UInt8], _ key: StaticString, _ value: Int64, first: Bool = false) {
        key_(&out, key, first)
        out.append(contentsOf: String(value).utf8)
    }

    private static func key_(_ out: inout [UInt8], _ key: StaticString, _ first: Bool) {
        if !first { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(UInt8(ascii: "\""))
        out.append(UInt8(ascii: ":"))
    }

    // MARK: Decoding

    public static func decodeContent(_ bytes: [UInt8]) -> ContentDim? {
        bytes.withUnsafeBytes { decodeContent($0) }
    }

    public static func decodeUser(_ bytes: [UInt8]) -> UserDim? {
        bytes.withUnsafeBytes { decodeUser($0) }
    }

    public static func decodeContent(_ bytes: UnsafeRawBufferPointer) -> ContentDim? {
        var id: String?, title: String?, category: String?, author: String?, region: String?, status: String?
        var ts: Int64?
        var r = Reader(bytes)
        let ok = r.object { r, key in
            if key.equals("content_id") { id = r.string() }
            else if key.equals("title") { title = r.string() }
            else if key.equals("category") { category = r.string() }
            else if key.equals("author_id") { author = r.string() }
            else if key.equals("region") { region = r.string() }
            else if key.equals("status") { status = r.string() }
            else if key.equals("publish_ts") { ts = r.integer() }
            else { return r.skipValue() }
            return true
        }
        guard ok, let id, let title, let category, let author, let region, let status, let ts else { return nil }
        return ContentDim(contentId: id, title: title, category: category, authorId: author,
                          region: region, status: status, publishTs: ts)
    }

    public static func decodeUser(_ bytes: UnsafeRawBufferPointer) -> UserDim? {
        var id: String?, gender: String?, age: String?, province: String?
        var tier: Int64?
        var r = Reader(bytes)
        let ok = r.object { r, key in
            if key.equals("user_id") { id = r.string() }
            else if key.equals("gender") { gender = r.string() }
            else if key.equals("age_band") { age = r.string() }
            else if key.equals("province") { province = r.string() }
            else if key.equals("city_tier") { tier = r.integer() }
            else { return r.skipValue() }
            return true
        }
        guard ok, let id, let gender, let age, let province, let tier, let cityTier = Int(exactly: tier) else {
            return nil
        }
        return UserDim(userId: id, gender: gender, ageBand: age, province: province, cityTier: cityTier)
    }

    /// A user's row object read from its cached JSON (any key order, unknown keys skipped, as
    /// ``decodeUser(_:)-(UnsafeRawBufferPointer)``, whose encoding it equals byte for byte):
    /// string values that are plain ASCII (no escapes) are copied as they stand; anything else
    /// goes through the decoder and the encoder, so the bytes are the same either way.
    public static func userRowObject(fromCacheJSON bytes: UnsafeRawBufferPointer) -> UserRowObject? {
        var id: Range<Int>?, gender: Range<Int>?, age: Range<Int>?, province: Range<Int>?
        var tier: Int64?
        var plain = true
        var r = Reader(bytes)
        let ok = r.object { r, key in
            if key.equals("user_id") { id = r.plainASCIIString(&plain) }
            else if key.equals("gender") { gender = r.plainASCIIString(&plain) }
            else if key.equals("age_band") { age = r.plainASCIIString(&plain) }
            else if key.equals("province") { province = r.plainASCIIString(&plain) }
            else if key.equals("city_tier") { tier = r.integer() }
            else { return r.skipValue() }
            return true
        }
        guard ok else { return nil }
        guard plain else { return decodeUser(bytes).map(UserRowObject.init) }
        guard let id, let gender, let age, let province, let tier, Int(exactly: tier) != nil else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(72 + id.count + gender.count + age.count + province.count)
        out += #"{"user_id":"#.utf8
        out += UnsafeRawBufferPointer(rebasing: bytes[id])
        out.append(UInt8(ascii: ","))
        let membersStart = out.count
        out += #""gender":"#.utf8
        out += UnsafeRawBufferPointer(rebasing: bytes[gender])
        out += #","age_band":"#.utf8
        out += UnsafeRawBufferPointer(rebasing: bytes[age])
        out += #","province":"#.utf8
        out += UnsafeRawBufferPointer(rebasing: bytes[province])
        out += #","city_tier":"#.utf8
        out += String(tier).utf8
        out.append(UInt8(ascii: "}"))
        // A plain string's text between its quotes is its value.
        let userId = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(id.lowerBound + 1)..<(id.upperBound - 1)]), as: UTF8.self)
        return UserRowObject(userId: userId, text: out, membersStart: membersStart)
    }

    /// A minimal JSON reader over a byte buffer; every method returns nil/false on bad input and
    /// the caller gives up on the whole value.
    struct Reader {
        let b: UnsafeRawBufferPointer
        var i = 0
        /// Set by any failure inside a value reader, checked once per object member.
        var failed = false

        init(_ b: UnsafeRawBufferPointer) { self.b = b }

        mutating func ws() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func expect(_ c: UInt8) -> Bool {
            ws()
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }

        /// Reads `{ "key": value, … }` (the whole input), calling `member` positioned at each
        /// value with the key's bytes (unescaped). `member` must consume the value and return
        /// false (or set `failed`) on error.
        mutating func object(_ member: (inout Reader, UnsafeRawBufferPointer) -> Bool) -> Bool {
            guard expect(UInt8(ascii: "{")) else { return false }
            ws()
            if i < b.count, b[i] == UInt8(ascii: "}") {
                i += 1
            } else {
                while true {
                    ws()
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { return false }
                    // Keys without escapes are matched in place, without building a String.
                    let start = i + 1
                    var j = start
                    while j < b.count, b[j] != UInt8(ascii: "\""), b[j] != UInt8(ascii: "\\"), b[j] >= 0x20 { j += 1 }
                    guard j < b.count else { return false }
                    let ok: Bool
                    if b[j] == UInt8(ascii: "\"") {
                        let key = UnsafeRawBufferPointer(rebasing: b[start..<j])
                        i = j + 1
                        guard expect(UInt8(ascii: ":")) else { return false }
                        ws()
                        ok = member(&self, key)
                    } else {
                        guard var key = string(), expect(UInt8(ascii: ":")) else { return false }
                        ws()
                        ok = key.withUTF8 { member(&self, UnsafeRawBufferPointer($0)) }
                    }
                    guard ok, !failed else { return false }
                    ws()
                    guard i < b.count else { return false }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; break }
                    return false
                }
            }
            ws()
            return i == b.count
        }

        /// A string value; nil (and `failed`) when the next token is not a valid string.
        mutating func string() -> String? {
            guard i < b.count, b[i] == UInt8(ascii: "\""),
                  let (text, end) = JSONString.read(b, from: i + 1) else { failed = true; return nil }
            i = end
            return text
        }

        /// A string value's token, quotes included, when it is printable ASCII without escapes
        /// (its text is then its bytes). Otherwise `plain` is cleared and the string is read
        /// past (nil, and `failed` when it is not a valid string).
        mutating func plainASCIIString(_ plain: inout Bool) -> Range<Int>? {
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { failed = true; return nil }
            let start = i
            var j = i + 1
            while j < b.count, b[j] >= 0x20, b[j] < 0x80, b[j] != UInt8(ascii: "\""), b[j] != UInt8(ascii: "\\") { j += 1 }
            if j < b.count, b[j] == UInt8(ascii: "\"") {
                i = j + 1
                return start..<i
            }
            plain = false
            _ = string()
            return nil
        }

        /// An integer value (optional minus, digits, no fraction or exponent).
        mutating func integer() -> Int64? {
            var neg = false
            if i < b.count, b[i] == UInt8(ascii: "-") { neg = true; i += 1 }
            var v: Int64 = 0
            var digits = 0
            while i < b.count, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(Int64(b[i] - UInt8(ascii: "0")))
                guard !o1, !o2 else { failed = true; return nil }
                v = s
                digits += 1
                i += 1
            }
            guard digits > 0 else { failed = true; return nil }
            if i < b.count, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                failed = true
                return nil
            }
            return neg ? -v : v
        }

        /// Skips any JSON value (for unknown keys).
        mutating func skipValue(depth: Int = 0) -> Bool {
            ws()
            guard i < b.count, depth < 32 else { return false }
            switch b[i] {
            case UInt8(ascii: "\""):
                return string() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let close = b[i] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                let isObject = b[i] == UInt8(ascii: "{")
                i += 1
                ws()
                if i < b.count, b[i] == close { i += 1; return true }
                while true {
                    if isObject {
                        ws()
                        guard string() != nil, expect(UInt8(ascii: ":")) else { return false }
                    }
                    guard skipValue(depth: depth + 1) else { return false }
                    ws()
                    guard i < b.count else { return false }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == close { i += 1; return true }
                    return false
                }
            default:
                // number, true, false, null: a run of their characters
                let start = i
                while i < b.count, b[i] > 0x20, b[i] != UInt8(ascii: ","), b[i] != UInt8(ascii: "}"),
                      b[i] != UInt8(ascii: "]") { i += 1 }
                return i > start
            }
        }
    }
}

extension UnsafeRawBufferPointer {
    /// Byte equality with a literal (JSON keys).
    @inline(__always)
    fileprivate func equals(_ s: StaticString) -> Bool {
        guard count == s.utf8CodeUnitCount else { return false }
        let p = s.utf8Start
        for k in 0..<count where self[k] != p[k] { return false }
        return true
    }
}
