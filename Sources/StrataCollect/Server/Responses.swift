import Hummingbird
import StrataCore

/// The gateway's JSON answers, written by hand (small, fixed shapes; no encoder on the hot path).
enum Responses {
    static let jsonType = "application/json; charset=utf-8"

    static func json(_ text: String, status: HTTPResponse.Status, headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: jsonType]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// `{"accepted":n,"rejected":[{"index":i,"reason":"…"}],"durable":"broker"|"spool"}`
    static func batch(accepted: Int, rejected: [Rejection], durable: String?) -> String {
        var s = "{\"accepted\":\(accepted),\"rejected\":["
        for (i, r) in rejected.enumerated() {
            if i > 0 { s += "," }
            s += "{\"index\":\(r.index),\"reason\":"
            JSONString.append(r.reason, to: &s)
            s += "}"
        }
        s += "]"
        if let durable { s += ",\"durable\":\"\(durable)\"" }
        return s + "}"
    }

    /// `{"error":"code","detail":"…"}`
    static func error(_ code: String, _ detail: String) -> String {
        var s = "{\"error\":"
        JSONString.append(code, to: &s)
        s += ",\"detail\":"
        JSONString.append(detail, to: &s)
        return s + "}"
    }
}
