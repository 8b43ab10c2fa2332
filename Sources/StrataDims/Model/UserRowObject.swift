import StrataCore

/// A user's dimensions in the form a DWM row carries them: the bytes of the row's `user` object,
/// `{"gender":…,"age_band":…,"province":…,"city_tier":…}` (``DimJSON/dwmUserObject(_:)``), kept
/// inside the user's cached JSON (the same members after `"user_id":…,`).
///
/// The cache keeps users this way. A minute's enrichment looks up to a million users, each
/// usually in one row; decoding every Redis value into a ``UserDim`` of Strings only to encode
/// it again into the row cost more than reading it from Redis. Read from Redis, the object is
/// cut from the cached JSON without decoding its strings (``DimJSON/userRowObject(fromCacheJSON:)``).
public struct UserRowObject: Sendable, Equatable {
    public let userId: String
    /// The user's cached JSON, ``DimJSON/encode(_:)-(UserDim)``'s text: `{"user_id":…,` then the
    /// row object's members, which are the other fields in the same order. One array is both the
    /// Redis value and the row object, so a user read from the store is encoded once.
    private let text: [UInt8]
    /// Where the row object's members begin in `text` (just after `"user_id":…,`).
    private let membersStart: Int

    public init(_ u: UserDim) {
        userId = u.userId
        (text, membersStart) = DimJSON.encodeMarkingMembers(u)
    }

    init(userId: String, text: [UInt8], membersStart: Int) {
        self.userId = userId
        self.text = text
        self.membersStart = membersStart
    }

    /// The cached JSON of the user (the Redis value).
    public func cacheJSON() -> [UInt8] { text }

    /// Lends the row object without its opening brace, `"gender":…,"city_tier":…}`: a row writes
    /// `{` and then these bytes (no copy of its own, no retain of the array).
    public func withRowObjectMembers<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try text.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[membersStart...])) }
    }

    /// The row's `user` object, `{"gender":…,"age_band":…,"province":…,"city_tier":…}`
    /// (``DimJSON/dwmUserObject(_:)``'s text).
    public var json: [UInt8] { withRowObjectMembers { [UInt8(ascii: "{")] + $0 } }

    /// The profile, decoded back (for callers that want Strings, e.g. ``DimensionCache/lookupUsers(_:)``).
    public var dim: UserDim? { DimJSON.decodeUser(text) }
}
