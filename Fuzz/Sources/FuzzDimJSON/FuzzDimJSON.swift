// The dimension JSON of the Redis tier (DimJSON) and the dim.changelog record (DimChange).
//
// Properties, for any bytes:
//  - DimJSON.decodeContent/decodeUser return a dimension or nil (never a trap);
//  - a decoded dimension encodes to JSON that decodes to the same dimension, with DimJSON and
//    with Codable (the writer promises Codable's shape);
//  - the DWM row `user` object cut from cached JSON (DimJSON.userRowObject) is the decoded
//    profile's object (DimJSON.dwmUserObject), byte for byte, and nil exactly when decodeUser is;
//  - DimChange.decode(key:value:) (key: the first line, value: the rest) returns a change or a
//    DimChangeError; a change re-encodes to a record that decodes to it again.
import Foundation
import FuzzSupport
import StrataDims

/// The test run on each input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDimJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    if let c = DimJSON.decodeContent(bytes) {
        let json = DimJSON.encode(c)
        require(DimJSON.decodeContent(json) == c, "content \(c) does not survive encode/decode: \(String(decoding: json, as: UTF8.self).debugDescription)")
        require((try? JSONDecoder().decode(ContentDim.self, from: Data(json))) == c,
                "Codable reads DimJSON's \(String(decoding: json, as: UTF8.self).debugDescription) differently")
    }
    if let u = DimJSON.decodeUser(bytes) {
        let json = DimJSON.encode(u)
        require(DimJSON.decodeUser(json) == u, "user \(u) does not survive encode/decode: \(String(decoding: json, as: UTF8.self).debugDescription)")
        require((try? JSONDecoder().decode(UserDim.self, from: Data(json))) == u,
                "Codable reads DimJSON's \(String(decoding: json, as: UTF8.self).debugDescription) differently")
    }
    // The user row object cut from the bytes is what decoding and encoding would give.
    let cut = DimJSON.userRowObject(fromCacheJSON: bytes)
    let decoded = DimJSON.decodeUser(bytes).map(UserRowObject.init)
    require(cut == decoded, "userRowObject gives \(cut.map { String(decoding: $0.json, as: UTF8.self) }.debugDescription), decoding gives \(decoded.map { String(decoding: $0.json, as: UTF8.self) }.debugDescription)")
    // The DWM row objects are written with the same field writer.
    if let c = DimJSON.decodeContent(bytes) {
        let o = DimJSON.dwmContentObject(c)
        require((try? JSONSerialization.jsonObject(with: Data(o))) != nil, "dwmContentObject is not JSON: \(String(decoding: o, as: UTF8.self).debugDescription)")
    }

    let all = Array(bytes)
    let newline = all.firstIndex(of: 0x0A)
    let key = Array(all[..<(newline ?? all.count)])
    let value: [UInt8]? = newline.map { Array(all[($0 + 1)...]) }
    do {
        let change = try DimChange.decode(key: key, value: value)
        let again = try DimChange.decode(key: change.keyBytes, value: change.encoded())
        require(again == change, "change \(change) re-decodes as \(again)")
    } catch is DimChangeError {
    } catch {
        fatalError("DimChange.decode threw \(error), not a DimChangeError")
    }
    return 0
}
