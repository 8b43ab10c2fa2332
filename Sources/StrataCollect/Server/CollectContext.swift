public import Hummingbird
public import NIOCore

/// Hummingbird's request context plus the peer's address (for `client_ip` and rate-limit keys).
public struct CollectContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
