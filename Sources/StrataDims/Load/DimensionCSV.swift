import Foundation

/// A CSV load that cannot go through: nothing is written when any row is bad.
public struct DimensionCSVError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file (or "<memory>").
    public var source: String
    /// 1-based line of the offending record (1 = the header).
    public var line: Int
    public var message: String

    public var description: String { "\(source):\(line): \(message)" }
}

/// Dimension files as `strata dims load` reads and `strata gen dims` writes them: a header row
/// naming the columns of sql/ in any order (unknown columns are ignored), then one row per id.
/// Every row is checked before anything is returned, so a bad row fails the whole load.
public enum DimensionCSV {
    public static let contentColumns = ["content_id", "title", "category", "author_id", "region", "status", "publish_ts"]
    public static let userColumns = ["user_id", "gender", "age_band", "province", "city_tier"]

    public static func readContents(_ path: String) throws -> [ContentDim] {
        try parseContents(read(path), source: path)
    }

    public static func readUsers(_ path: String) throws -> [UserDim] {
        try parseUsers(read(path), source: path)
    }

    public static func parseContents(_ bytes: [UInt8], source: String = "<memory>") throws -> [ContentDim] {
        try rows(bytes, source: source, columns: contentColumns) { f, fail in
            guard let ts = Int64(f[6]) else { throw fail("publish_ts '\(f[6])' is not an integer (epoch milliseconds)") }
            return ContentDim(contentId: f[0], title: f[1], category: f[2], authorId: f[3], region: f[4],
                              status: f[5], publishTs: ts)
        } id: { $0.contentId }
    }

    public static func parseUsers(_ bytes: [UInt8], source: String = "<memory>") throws -> [UserDim] {
        try rows(bytes, source: source, columns: userColumns) { f, fail in
            guard let tier = Int(f[4]) else { throw fail("city_tier '\(f[4])' is not an integer") }
            return UserDim(userId: f[0], gender: f[1], ageBand: f[2], province: f[3], cityTier: tier)
        } id: { $0.userId }
    }

    public static func encode(contents: [ContentDim]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + contents.count * 96)
        CSV.appendRecord(&out, contentColumns)
        for c in contents {
            CSV.appendRecord(&out, [c.contentId, c.title, c.category, c.authorId, c.region, c.status, String(c.publishTs)])
        }
        return out
    }

    public static func encode(users: [UserDim]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + users.count * 40)
        CSV.appendRecord(&out, userColumns)
        for u in users {
            CSV.appendRecord(&out, [u.userId, u.gender, u.ageBand, u.province, String(u.cityTier)])
        }
        return out
    }

    public static func write(contents: [ContentDim], to path: String) throws {
        try Data(encode(contents: contents)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    public static func write(users: [UserDim], to path: String) throws {
        try Data(encode(users: users)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    // MARK: Internals

    private static func read(_ path: String) throws -> [UInt8] {
        do {
            return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw DimensionCSVError(source: path, line: 0, message: "cannot read: \(error.localizedDescription)")
        }
    }

    /// Maps the header to `columns`, then builds one value per record with the fields in
    /// `columns` order. Empty ids and duplicate ids are errors.
    private static func rows<T>(
        _ bytes: [UInt8], source: String, columns: [String],
        make: ([String], (String) -> DimensionCSVError) throws -> T,
        id: (T) -> String
    ) throws -> [T] {
        let records: [CSV.Record]
        do {
            records = try CSV.parse(bytes)
        } catch {
            throw DimensionCSVError(source: source, line: error.line, message: error.message)
        }
        guard let header = records.first else {
            throw DimensionCSVError(source: source, line: 1, message: "empty file: a header row is required (\(columns.joined(separator: ",")))")
        }
        var position: [String: Int] = [:]
        for (k, name) in header.fields.enumerated() {
            let name = name.trimmingCharacters(in: .whitespaces)
            if position[name] != nil {
                throw DimensionCSVError(source: source, line: header.line, message: "column '\(name)' appears twice in the header")
            }
            position[name] = k
        }
        let missing = columns.filter { position[$0] == nil }
        if !missing.isEmpty {
            throw DimensionCSVError(source: source, line: header.line,
                                    message: "header lacks column(s) \(missing.joined(separator: ", ")); expected \(columns.joined(separator: ","))")
        }
        let index = columns.map { position[$0]! }

        var out: [T] = []
        out.reserveCapacity(records.count - 1)
        var firstLine: [String: Int] = [:]
        firstLine.reserveCapacity(records.count - 1)
        for r in records.dropFirst() {
            let fail = { (m: String) in DimensionCSVError(source: source, line: r.line, message: m) }
            guard r.fields.count == header.fields.count else {
                throw fail("expected \(header.fields.count) fields, found \(r.fields.count)")
            }
            let fields = index.map { r.fields[$0] }
            if fields[0].isEmpty { throw fail("\(columns[0]) is empty") }
            let value = try make(fields, fail)
            if let earlier = firstLine.updateValue(r.line, forKey: id(value)) {
                throw fail("duplicate \(columns[0]) '\(id(value))' (first on line \(earlier))")
            }
            out.append(value)
        }
        return out
    }
}
