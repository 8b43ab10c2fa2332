/// Where and how a ``RedisClient`` connects.
public struct RedisConfig: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 6379
    /// ACL user (Redis 6+); sent as `AUTH username password`. Requires `password`.
    public var username: String? = nil
    /// Sent as `AUTH password` (or with `username`) on every (re)connect.
    public var password: String? = nil
    /// Selected with `SELECT` on every (re)connect when not 0.
    public var database: Int = 0
    /// Limit for the TCP connect. `.zero` or less: wait as long as the OS does.
    public var connectTimeout: Duration = .seconds(2)
    /// Limit for each socket read/write while waiting for replies. `.zero` or less: no limit.
    public var commandTimeout: Duration = .seconds(2)
    /// Pause before the first reconnect after a connection-level failure; doubles up to
    /// `reconnectBackoffMax`, with jitter.
    public var reconnectBackoffInitial: Duration = .milliseconds(50)
    public var reconnectBackoffMax: Duration = .seconds(5)
    /// Attempts per call (each retry after a reconnect). Values below 1 count as 1.
    public var maxAttempts: Int = 3

    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(2),
        reconnectBackoffInitial: Duration = .milliseconds(50),
        reconnectBackoffMax: Duration = .seconds(5),
        maxAttempts: Int = 3
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.reconnectBackoffInitial = reconnectBackoffInitial
        self.reconnectBackoffMax = reconnectBackoffMax
        self.maxAttempts = maxAttempts
    }

    /// Parses `redis://[user:password@]host[:port][/db]` (also `redis://:password@…` and
    /// `[::1]` hosts; user and password may be percent-encoded). Other settings keep their
    /// defaults. `rediss://` is rejected: hiredis 0.14 has no TLS.
    public init(url: String) throws(RedisError) {
        self.init()
        let scheme = "redis://"
        guard url.hasPrefix(scheme) else {
            if url.hasPrefix("rediss://") { throw .invalidURL("TLS (rediss://) is not supported: \(url)") }
            throw .invalidURL("expected redis://…: \(url)")
        }
        var rest = Substring(url.dropFirst(scheme.count))
        if rest.contains("?") || rest.contains("#") {
            throw .invalidURL("query and fragment are not supported: \(url)")
        }

        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }

        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = userinfo.firstIndex(of: ":") else {
                throw .invalidURL("credentials must be user:password or :password: \(url)")
            }
            let user = try Self.percentDecoded(userinfo[..<colon], url)
            let pass = try Self.percentDecoded(userinfo[userinfo.index(after: colon)...], url)
            username = user.isEmpty ? nil : user
            password = pass
        }

        var hostPart: Substring
        var portPart: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw .invalidURL("unterminated IPv6 host: \(url)") }
            hostPart = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidURL("unexpected text after host: \(url)") }
                portPart = after.dropFirst()
            }
        } else if let colon = rest.firstIndex(of: ":") {
            hostPart = rest[..<colon]
            portPart = rest[rest.index(after: colon)...]
        } else {
            hostPart = rest
        }
        guard !hostPart.isEmpty else { throw .invalidURL("missing host: \(url)") }
        host = String(hostPart)

        if let portPart {
            guard let p = Int(portPart), (1...65535).contains(p) else {
                throw .invalidURL("bad port '\(portPart)': \(url)")
            }
            port = p
        }
        if !path.isEmpty {
            guard let db = Int(path), db >= 0 else { throw .invalidURL("bad database '\(path)': \(url)") }
            database = db
        }
    }

    private static func percentDecoded(_ s: Substring, _ url: String) throws(RedisError) -> String {
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            guard b == UInt8(ascii: "%") else { out.append(b); continue }
            guard bytes.count >= 2,
                  let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) else {
                throw .invalidURL("bad percent escape: \(url)")
            }
            out.append(v)
            bytes = bytes.dropFirst(2)
        }
        return String(decoding: out, as: UTF8.self)
    }
}
