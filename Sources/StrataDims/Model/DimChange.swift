import Foundation

/// One record of `dim.changelog`: what `strata dims load|put` publishes after writing the store,
/// and what `dimsync` applies to Redis and the valid-ID filter.
///
/// Kafka key: `content:<id>` / `user:<id>` (the topic is compacted, so the latest change per
/// dimension survives). Value: a JSON object,
/// `{"v":1,"op":"upsert","kind":"content","id":"c00000001","content":{…all content_dim columns…}}`,
/// `{"v":1,"op":"upsert","kind":"user","id":"u000000001","user":{…all user_dim columns…}}`,
/// `{"v":1,"op":"delete","kind":"content","id":"c00000001"}` (same for users). A Kafka
/// tombstone (null value) under a valid key also decodes as a delete.
public enum DimChange: Sendable, Equatable, Codable {
    case upsertContent(ContentDim)
    case upsertUser(UserDim)
    case deleteContent(id: String)
    case deleteUser(id: String)

    public static let formatVersion = 1

    public enum Kind: String, Sendable, Codable { case content, user }

    public var kind: Kind {
        switch self {
        case .upsertContent, .deleteContent: .content
        case .upsertUser, .deleteUser: .user
        }
    }

    public var id: String {
        switch self {
        case .upsertContent(let c): c.contentId
        case .upsertUser(let u): u.userId
        case .deleteContent(let id), .deleteUser(let id): id
        }
    }

    /// The Kafka key: `content:<id>` or `user:<id>`.
    public var key: String { "\(kind.rawValue):\(id)" }
    public var keyBytes: [UInt8] { Array(key.utf8) }

    /// The Kafka value (compact JSON).
    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings and integers cannot fail.
        return Array(try! encoder.encode(self))
    }

    public static func decode(_ value: [UInt8]) throws -> DimChange {
        do {
            return try JSONDecoder().decode(DimChange.self, from: Data(value))
        } catch let e as DimChangeError {
            throw e
        } catch {
            throw DimChangeError(message: "not a dim.changelog record: \(error)")
        }
    }

    /// Decodes a changelog message: a JSON value whose kind and id must match the key, or a
    /// tombstone (nil value), which deletes the keyed dimension.
    public static func decode(key: [UInt8], value: [UInt8]?) throws -> DimChange {
        let k = String(decoding: key, as: UTF8.self)
        guard let colon = k.firstIndex(of: ":"), let kind = Kind(rawValue: String(k[..<colon])) else {
            throw DimChangeError(message: "key '\(k)' is not content:<id> or user:<id>")
        }
        let id = String(k[k.index(after: colon)...])
        guard let value else { return kind == .content ? .deleteContent(id: id) : .deleteUser(id: id) }
        let change = try decode(value)
        guard change.kind == kind, change.id == id else {
            throw DimChangeError(message: "key '\(k)' does not match the record (\(change.key))")
        }
        return change
    }

    // MARK: Codable

    private enum CodingKeys: String, CodingKey { case v, op, kind, id, content, user }
    private enum Op: String, Codable { case upsert, delete }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.formatVersion, forKey: .v)
        try c.encode(kind, forKey: .kind)
        try c.encode(id, forKey: .id)
        switch self {
        case .upsertContent(let d): try c.encode(Op.upsert, forKey: .op); try c.encode(d, forKey: .content)
        case .upsertUser(let d): try c.encode(Op.upsert, forKey: .op); try c.encode(d, forKey: .user)
        case .deleteContent, .deleteUser: try c.encode(Op.delete, forKey: .op)
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let v = try c.decode(Int.self, forKey: .v)
        guard v == Self.formatVersion else { throw DimChangeError(message: "unsupported changelog version \(v)") }
        let kind = try c.decode(Kind.self, forKey: .kind)
        let id = try c.decode(String.self, forKey: .id)
        switch (try c.decode(Op.self, forKey: .op), kind) {
        case (.delete, .content): self = .deleteContent(id: id)
        case (.delete, .user): self = .deleteUser(id: id)
        case (.upsert, .content): self = .upsertContent(try c.decode(ContentDim.self, forKey: .content))
        case (.upsert, .user): self = .upsertUser(try c.decode(UserDim.self, forKey: .user))
        }
        guard self.id == id else { throw DimChangeError(message: "record id '\(id)' differs from its \(kind.rawValue) id '\(self.id)'") }
    }
}

public struct DimChangeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { "invalid dim.changelog record: \(message)" }
}
