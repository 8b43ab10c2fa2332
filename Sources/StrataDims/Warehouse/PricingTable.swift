import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The settlement price of one content category (sql/<dialect>/003_pricing.sql), in micro-units
/// of `currency` (1 = 0.000001), so fees add up exactly.
public struct CategoryPrice: Sendable, Hashable {
    /// A `content_dim.category`, or `*` for every category without a row of its own.
    public var category: String
    public var pricePerClickMicro: Int64
    /// Per 1 000 exposures.
    public var pricePerMilleMicro: Int64
    public var currency: String

    public static let fallbackCategory = "*"

    public init(category: String, pricePerClickMicro: Int64, pricePerMilleMicro: Int64, currency: String = "CNY") {
        self.category = category
        self.pricePerClickMicro = pricePerClickMicro
        self.pricePerMilleMicro = pricePerMilleMicro
        self.currency = currency
    }
}

/// Where settlement prices live: the same store as the dimensions (`--store`).
public protocol PricingTable: AnyObject, Sendable {
    /// Creates the pricing table when absent (001 and 003; idempotent).
    func migrate() throws
    /// Replaces every price with `prices` in one transaction (a load is the whole price list).
    func replaceAll(_ prices: [CategoryPrice]) throws
    /// Every price, by category.
    func all() throws -> [CategoryPrice]
}

public enum PricingTableFactory {
    public static func open(_ address: String) throws -> any PricingTable {
        if address.hasPrefix("sqlite:") {
            let path = String(address.dropFirst("sqlite:".count))
            guard !path.isEmpty else {
                throw DimensionStoreError.invalidAddress("sqlite: needs a file path, e.g. sqlite:data/strata.db")
            }
            return try SQLitePricingTable(path: path)
        }
        if address.hasPrefix("postgres://") || address.hasPrefix("postgresql://") {
            return try PostgresPricingTable(url: address)
        }
        throw DimensionStoreError.invalidAddress(
            "'\(address)': expected sqlite:PATH or postgres://user:password@host:port/database")
    }
}

public enum PricingCSVError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid(line: Int, message: String)
    public var description: String {
        switch self {
        case .invalid(let line, let m): "pricing CSV line \(line): \(m)"
        }
    }
}

/// `category,price_per_click,price_per_mille[,currency]` with a header row; prices are decimals in
/// currency units with at most 6 decimal places (`0.05`, `12`).
public enum PricingCSV {
    public static let header = ["category", "price_per_click", "price_per_mille"]

    public static func parse(_ text: String) throws -> [CategoryPrice] {
        let records: [CSV.Record]
        do { records = try CSV.parse(Array(text.utf8)) } catch { throw PricingCSVError.invalid(line: error.line, message: error.message) }
        guard let head = records.first?.fields else { throw PricingCSVError.invalid(line: 1, message: "empty file (expected a header row)") }
        let names = head.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard Array(names.prefix(3)) == header, names.count <= 4, names.count == 3 || names[3] == "currency" else {
            throw PricingCSVError.invalid(line: 1, message: "header must be \(header.joined(separator: ","))[,currency], got \(head.joined(separator: ","))")
        }
        var out: [CategoryPrice] = []
        var seen = Set<String>()
        for record in records.dropFirst() {
            let line = record.line, row = record.fields
            guard row.count == names.count else {
                throw PricingCSVError.invalid(line: line, message: "expected \(names.count) fields, got \(row.count)")
            }
            let category = row[0].trimmingCharacters(in: .whitespaces)
            guard !category.isEmpty else { throw PricingCSVError.invalid(line: line, message: "empty category") }
            guard seen.insert(category).inserted else {
                throw PricingCSVError.invalid(line: line, message: "category \(category) appears twice")
            }
            guard let click = micro(row[1]) else {
                throw PricingCSVError.invalid(line: line, message: "price_per_click '\(row[1])' is not a non-negative decimal with at most 6 decimals")
            }
            guard let mille = micro(row[2]) else {
                throw PricingCSVError.invalid(line: line, message: "price_per_mille '\(row[2])' is not a non-negative decimal with at most 6 decimals")
            }
            let currency = names.count == 4 ? row[3].trimmingCharacters(in: .whitespaces) : "CNY"
            out.append(CategoryPrice(category: category, pricePerClickMicro: click, pricePerMilleMicro: mille,
                                     currency: currency.isEmpty ? "CNY" : currency))
        }
        return out
    }

    /// "12.5" → 12_500_000. Exact decimal parsing: no binary floating point in money.
    public static func micro(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let whole = parts.first, !whole.isEmpty,
              whole.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let w = Int64(whole), w <= 9_000_000_000_000 else { return nil }
        var frac: Int64 = 0
        if parts.count == 2 {
            let f = parts[1]
            guard !f.isEmpty, f.count <= 6, f.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = Int64(f) else { return nil }
            frac = v
            for _ in f.count..<6 { frac *= 10 }
        }
        return w * 1_000_000 + frac
    }

    /// 12_500_000 → "12.500000".
    public static func format(micro: Int64) -> String {
        let sign = micro < 0 ? "-" : ""
        let m = micro.magnitude
        let frac = String(m % 1_000_000)
        return "\(sign)\(m / 1_000_000).\(String(repeating: "0", count: 6 - frac.count))\(frac)"
    }
}

// MARK: - SQLite

public final class SQLitePricingTable: PricingTable {
    private let connection: Mutex<SQLiteConnection>

    public init(path: String, busyTimeoutMs: Int32 = 10_000) throws {
        let c = try SQLiteConnection(path: path)
        try c.exec("PRAGMA busy_timeout = \(busyTimeoutMs)")
        connection = Mutex(c)
    }

    public func migrate() throws {
        try connection.withLock { c in
            try c.transaction {
                try c.exec(DimensionSchema.sqlite)
                try c.exec(WarehouseSchema.sqlitePricing)
            }
        }
    }

    public func replaceAll(_ prices: [CategoryPrice]) throws {
        try connection.withLock { c in
            try c.transaction {
                try c.exec("DELETE FROM pricing")
                try c.withStatement("INSERT INTO pricing (category, price_per_click_micro, price_per_mille_micro, currency) VALUES (?, ?, ?, ?)") { s in
                    for p in prices {
                        s.reset()
                        try s.bind(1, p.category); try s.bind(2, p.pricePerClickMicro)
                        try s.bind(3, p.pricePerMilleMicro); try s.bind(4, p.currency)
                        try s.run()
                    }
                }
            }
        }
    }

    public func all() throws -> [CategoryPrice] {
        try connection.withLock { c in
            try c.withStatement("SELECT category, price_per_click_micro, price_per_mille_micro, currency FROM pricing ORDER BY category") { s in
                var out: [CategoryPrice] = []
                while try s.step() {
                    out.append(CategoryPrice(category: s.text(0), pricePerClickMicro: s.int64(1), pricePerMilleMicro: s.int64(2), currency: s.text(3)))
                }
                return out
            }
        }
    }
}

// MARK: - PostgreSQL

public final class PostgresPricingTable: PricingTable {
    private let pg: PostgresWarehouseClient
    private var client: PostgresClient { pg.client }
    private var logger: Logger { pg.logger }

    public init(url: String, connectTimeout: Duration = .seconds(10)) throws {
        pg = try PostgresWarehouseClient(url: url, label: "strata.pricing.postgres", maxConnections: 2,
                                         connectTimeout: connectTimeout, stallTimeout: .seconds(60))
    }

    private func call<T: Sendable>(_ what: String, _ work: @escaping @Sendable (BlockingBridge.Progress) async throws -> T) throws -> T {
        try pg.call(what, work)
    }

    public func migrate() throws { try pg.migrate("pricing", [WarehouseSchema.postgresPricing]) }

    public func replaceAll(_ prices: [CategoryPrice]) throws {
        let logger = self.logger
        try call("load of \(prices.count) prices") { [client] _ in
            try await client.withTransaction(logger: logger) { conn in
                _ = try await conn.query("DELETE FROM pricing", logger: logger).collect()
                if prices.isEmpty { return }
                _ = try await conn.query("""
                    INSERT INTO pricing (category, price_per_click_micro, price_per_mille_micro, currency)
                    SELECT * FROM unnest(\(prices.map(\.category))::text[], \(prices.map(\.pricePerClickMicro))::int8[],
                      \(prices.map(\.pricePerMilleMicro))::int8[], \(prices.map(\.currency))::text[])
                    """, logger: logger).collect()
            }
        }
    }

    public func all() throws -> [CategoryPrice] {
        let logger = self.logger
        return try call("read of prices") { [client] _ in
            var out: [CategoryPrice] = []
            let rows = try await client.query("SELECT category, price_per_click_micro, price_per_mille_micro, currency FROM pricing ORDER BY category", logger: logger)
            for try await (c, click, mille, cur) in rows.decode((String, Int64, Int64, String).self) {
                out.append(CategoryPrice(category: c, pricePerClickMicro: click, pricePerMilleMicro: mille, currency: cur))
            }
            return out
        }
    }
}
