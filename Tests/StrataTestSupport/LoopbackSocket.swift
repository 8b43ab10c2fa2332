import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Client sockets to a server under test on 127.0.0.1.
public enum LoopbackSocket {
    public struct ConnectFailed: Error, CustomStringConvertible {
        public let description: String
    }

    /// A connected TCP socket (the caller closes it), with a 200 ms receive timeout so reads
    /// can check deadlines. `receiveBuffer`: SO_RCVBUF set before connecting (a small one makes
    /// a client that does not read push back on the server sooner).
    public static func connect(port: Int, receiveBuffer: Int? = nil) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ConnectFailed(description: "socket() failed") }
        if var size = receiveBuffer.map(Int32.init) {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { close(fd); throw ConnectFailed(description: "connect to 127.0.0.1:\(port) failed") }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }
}
