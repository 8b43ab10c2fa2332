import StrataCore

/// A user's dimensions in the form a DWM row carries them: the bytes of the row's `user` object,
/// `{"gender":…,"age_band":…,"province":…,"city_tier":…}` (``DimJSON/dwmUserObject(_:)``).
///
/// The cache keeps users this way. A minute's enrichment looks up to a million users, each
/// usually in one row; decoding every Redis value into a ``UserDim`` of Strings only to encode
/// it again into the row cost more than reading it from Redis. Read from Redis, the object is
/// cut from the cached JSON without decoding its strings (``DimJSON/userRowObject(fromCacheJSON:)``).
public struct UserRowObject: Sendable, Equatable {
    public let userId: String
    /// The row's `user` object, JSON text.
    public let json: [UInt8]

    public init(_ u: UserDim) {
        userId = u.userId
        json = DimJSON.dwmUserObject(u)
    }

    init(userId: String, json: [UInt8]) {
        self.userId = userId
        self.json = json
    }

    /// The cached JSON of the user (``DimJSON/encode(_:)-(UserDim)``'s text): the id, then the
    /// row object's members, which are the other fields in the same order.
    public func cacheJSON() -> [UInt8] {
        var out: [UInt8] = Array(#"{"user_id":"#.utf8)
        out.reserveCapacity(out.count + userId.utf8.count + json.count + 3)
        JSONString.append(userId, to: &out)
        out.append(UInt8(ascii: ","))
        out += json.dropFirst()
        return out
    }

    /// The profile, decoded back (for callers that want Strings, e.g. ``DimensionCache/lookupUsers(_:)``).
    public var dim: UserDim? { DimJSON.decodeUser(cacheJSON()) }
}
