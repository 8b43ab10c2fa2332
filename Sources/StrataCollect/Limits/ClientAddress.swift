/// The client's address for enrichment and rate limiting: the peer, or — only when the peer is a
/// configured trusted proxy — the right-most `X-Forwarded-For` entry that is not itself a trusted
/// proxy (entries further left were written by the client and can say anything).
public struct TrustedProxies: Sendable {
    private let exact: Set<String>
    private let v4Networks: [(network: UInt32, mask: UInt32)]

    /// Addresses (`10.0.0.7`, `::1`) and IPv4 networks (`10.0.0.0/8`).
    public init(_ entries: [String]) throws {
        var exact = Set<String>()
        var nets: [(UInt32, UInt32)] = []
        for raw in entries {
            let e = raw.stripping(" ")
            if let slash = e.firstIndex(of: "/") {
                guard let ip = Self.parseV4(String(e[..<slash])), let bits = Int(e[e.index(after: slash)...]), (0...32).contains(bits) else {
                    throw InvalidProxy(entry: raw)
                }
                let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
                nets.append((ip & mask, mask))
            } else {
                guard ClientAddress.isPlainAddress(e) else { throw InvalidProxy(entry: raw) }
                exact.insert(e.lowercased())
            }
        }
        self.exact = exact
        v4Networks = nets
    }

    public struct InvalidProxy: Error, CustomStringConvertible {
        public let entry: String
        public var description: String { "trusted proxy \"\(entry)\" is not an address (10.0.0.7, ::1) or an IPv4 network (10.0.0.0/8)" }
    }

    public var isEmpty: Bool { exact.isEmpty && v4Networks.isEmpty }

    public func contains(_ address: String) -> Bool {
        if exact.contains(address.lowercased()) { return true }
        guard !v4Networks.isEmpty, let ip = Self.parseV4(address) else { return false }
        return v4Networks.contains { ip & $0.mask == $0.network }
    }

    static func parseV4(_ s: String) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard let b = UInt8(p) else { return nil }
            v = v << 8 | UInt32(b)
        }
        return v
    }
}

extension String {
    fileprivate func stripping(_ set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}

public enum ClientAddress {
    /// The address to record for a request from `peer` carrying `forwardedFor` (the header's value).
    public static func resolve(peer: String?, forwardedFor: String?, trusted: TrustedProxies) -> String {
        let peer = peer.flatMap { isPlainAddress($0) ? $0 : nil } ?? "unknown"
        guard let forwardedFor, !trusted.isEmpty, trusted.contains(peer) else { return peer }
        for entry in forwardedFor.split(separator: ",").reversed() {
            let candidate = String(entry).stripping(" ")
            guard isPlainAddress(candidate) else { return peer }
            if !trusted.contains(candidate) { return candidate }
        }
        return peer
    }

    /// Digits, hex letters, '.' and ':' only, 1…45 bytes: safe to write into JSON as it is.
    public static func isPlainAddress(_ s: String) -> Bool {
        let u = s.utf8
        guard (1...45).contains(u.count) else { return false }
        return u.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46) || b == 0x2E || b == 0x3A
        }
    }
}
