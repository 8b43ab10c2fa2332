// The dimension CSV reader (`strata dims load`): CSV.parse under DimensionCSV.parseContents and
// parseUsers, and the writer (`strata gen dims`).
//
// Properties, for any bytes read as a content file and as a user file:
//  - the reader returns rows or a DimensionCSVError naming a line of the file (never a trap);
//  - rows it returns, written with DimensionCSV.encode, read back as the same rows.
import FuzzSupport
import StrataDims

/// The test run on each input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDimCSV(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(fuzzInput(data, size))
    // Physical lines, as the reader counts them (LF, CRLF or a lone CR end one).
    var lines = 1
    for (i, b) in bytes.enumerated() where b == 0x0A || (b == 0x0D && (i + 1 == bytes.count || bytes[i + 1] != 0x0A)) { lines += 1 }

    func checkError(_ error: any Error) {
        guard let e = error as? DimensionCSVError else { fatalError("the reader threw \(error), not a DimensionCSVError") }
        require((1...lines).contains(e.line), "error on line \(e.line) of a \(lines)-line file: \(e) (input \(show(fuzzInput(data, size))))")
        require(!e.message.isEmpty, "an error without a message")
    }

    do {
        let contents = try DimensionCSV.parseContents(bytes)
        let written = DimensionCSV.encode(contents: contents)
        do {
            let again = try DimensionCSV.parseContents(written)
            require(again == contents, "content rows change when written and read back: \(contents) → \(again)")
        } catch {
            fatalError("the reader rejects what the writer wrote (\(error)): \(String(decoding: written, as: UTF8.self).debugDescription)")
        }
    } catch {
        checkError(error)
    }

    do {
        let users = try DimensionCSV.parseUsers(bytes)
        let written = DimensionCSV.encode(users: users)
        do {
            let again = try DimensionCSV.parseUsers(written)
            require(again == users, "user rows change when written and read back: \(users) → \(again)")
        } catch {
            fatalError("the reader rejects what the writer wrote (\(error)): \(String(decoding: written, as: UTF8.self).debugDescription)")
        }
    } catch {
        checkError(error)
    }
    return 0
}
