/// Errors thrown by ``RedisClient``. Every case carries the message from hiredis or the server.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No usable connection: refused, reset, closed by the server (EOF), or the client was closed.
    case connectionFailed(String)
    /// Connecting, or waiting for a reply, took longer than the configured timeout.
    case timeout(String)
    /// AUTH was rejected, or the server demands authentication (NOAUTH / WRONGPASS).
    case authenticationFailed(String)
    /// The server answered with an error reply (`-ERR …`, `-WRONGTYPE …`, …).
    case server(String)
    /// The reply stream could not be parsed, a reply had an unexpected shape, or a command could
    /// not be encoded (no arguments).
    case protocolError(String)
    /// A `redis://` URL could not be parsed.
    case invalidURL(String)

    public var description: String {
        switch self {
        case .connectionFailed(let m): "redis connection failed: \(m)"
        case .timeout(let m): "redis timeout: \(m)"
        case .authenticationFailed(let m): "redis authentication failed: \(m)"
        case .server(let m): "redis server error: \(m)"
        case .protocolError(let m): "redis protocol error: \(m)"
        case .invalidURL(let m): "invalid redis URL: \(m)"
        }
    }

    /// Maps an error reply to the error a typed command throws.
    static func fromReply(_ message: String) -> RedisError {
        // Redis 6+: NOAUTH when AUTH is missing, WRONGPASS when it is wrong.
        if message.hasPrefix("NOAUTH") || message.hasPrefix("WRONGPASS") {
            return .authenticationFailed(message)
        }
        return .server(message)
    }
}
