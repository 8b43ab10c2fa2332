import Foundation
import StrataArchive
public import StrataDims

/// One content's settlement for the day, from the batch path.
public struct SettlementRow: Sendable, Codable, Equatable {
    public var date: String
    public var contentId: String
    public var category: String
    /// Distinct users with at least one counted click on the content that day.
    public var distinctClickers: Int
    public var clicks: Int64
    public var exposures: Int64
    /// clicks / exposures; nil without exposures.
    public var ctr: Double?
    /// The price row used (the category's, else `*`); nil: no price, fee 0.
    public var pricedAs: String?
    public var pricePerClickMicro: Int64
    public var pricePerMilleMicro: Int64
    /// clicks × price_per_click + exposures × price_per_mille / 1000, rounded half up, in micro-units.
    public var feeMicro: Int64
    public var currency: String
    /// The stream's numbers (sums of dws_minute) and the late events' part of the batch numbers.
    public var streamClicks: Int64
    public var streamExposures: Int64
    public var lateClicks: Int64
    public var lateExposures: Int64
}

public struct SettlementMismatch: Sendable, Codable, Equatable {
    public var contentId: String
    public var metric: String
    public var batch: Int64
    public var stream: Int64
    public var late: Int64
}

/// The settlement section of the reconcile report: batch numbers cross-checked against the stream.
public struct SettlementCheck: Sendable, Codable {
    public var contents: Int
    public var distinctClickers: Int
    public var clicks: Int64
    public var exposures: Int64
    public var streamClicks: Int64
    public var streamExposures: Int64
    public var lateClicks: Int64
    public var lateExposures: Int64
    /// Fees per currency, in micro-units.
    public var feeMicro: [String: Int64]
    /// Categories with contents but no price (and no `*` row): their fee is 0.
    public var unpricedCategories: [String]
    public var mismatches: [SettlementMismatch]
    public var mismatchesTotal: Int
    public var ok: Bool
    /// The rows with the highest fees.
    public var top: [SettlementRow]
}

public enum Settlement {
    public static func rows(scan: DayScan, stream: [UInt64: Metrics], prices: [CategoryPrice]) -> [SettlementRow] {
        var batch: [UInt32: (clicks: Int64, exposures: Int64)] = [:]
        scan.forEachRow { k, m in
            let c = UInt32(truncatingIfNeeded: k)
            batch[c, default: (0, 0)].clicks += m[.click]
            batch[c, default: (0, 0)].exposures += m[.expose]
        }
        var streamSums: [UInt32: (clicks: Int64, exposures: Int64)] = [:]
        for (k, m) in stream {
            let c = UInt32(truncatingIfNeeded: k)
            streamSums[c, default: (0, 0)].clicks += m[.click]
            streamSums[c, default: (0, 0)].exposures += m[.expose]
        }
        var late: [UInt32: (clicks: Int64, exposures: Int64)] = [:]
        for (k, m) in scan.lateRows {
            let c = UInt32(truncatingIfNeeded: k)
            late[c, default: (0, 0)].clicks += m[.click]
            late[c, default: (0, 0)].exposures += m[.expose]
        }
        let clickers = scan.clickersPerContent()
        let byCategory = Dictionary(prices.map { ($0.category, $0) }, uniquingKeysWith: { a, _ in a })
        var contentsSeen = Set(batch.keys)
        for c in streamSums.keys where scan.isKnown(c) { contentsSeen.insert(c) }
        return contentsSeen.map { c -> SettlementRow in
            let b = batch[c] ?? (0, 0)
            let s = streamSums[c] ?? (0, 0)
            let l = late[c] ?? (0, 0)
            let category = scan.category(c) ?? ""
            let price = byCategory[category] ?? byCategory[CategoryPrice.fallbackCategory]
            let ppc = price?.pricePerClickMicro ?? 0
            let ppm = price?.pricePerMilleMicro ?? 0
            // Exposure part rounded half up to a micro-unit; multiplication reports overflow as a cap.
            let (clickFee, o1) = b.clicks.multipliedReportingOverflow(by: ppc)
            let (milleFee, o2) = b.exposures.multipliedReportingOverflow(by: ppm)
            let fee = o1 || o2 ? Int64.max : clickFee + (milleFee + 500) / 1000
            return SettlementRow(date: scan.day.description, contentId: scan.contentId(c), category: category,
                                 distinctClickers: clickers[c] ?? 0, clicks: b.clicks, exposures: b.exposures,
                                 ctr: b.exposures > 0 ? Double(b.clicks) / Double(b.exposures) : nil,
                                 pricedAs: price?.category, pricePerClickMicro: ppc, pricePerMilleMicro: ppm, feeMicro: fee,
                                 currency: price?.currency ?? "", streamClicks: s.clicks, streamExposures: s.exposures,
                                 lateClicks: l.clicks, lateExposures: l.exposures)
        }.sorted { $0.contentId < $1.contentId }
    }

    static func check(scan: DayScan, stream: [UInt64: Metrics], prices: [CategoryPrice], options: ReconcileOptions) -> SettlementCheck {
        let rows = rows(scan: scan, stream: stream, prices: prices)
        var out = SettlementCheck(contents: rows.count, distinctClickers: 0, clicks: 0, exposures: 0, streamClicks: 0,
                                  streamExposures: 0, lateClicks: 0, lateExposures: 0, feeMicro: [:], unpricedCategories: [],
                                  mismatches: [], mismatchesTotal: 0, ok: true, top: [])
        var unpriced = Set<String>()
        for r in rows {
            out.distinctClickers += r.distinctClickers
            out.clicks += r.clicks
            out.exposures += r.exposures
            out.streamClicks += r.streamClicks
            out.streamExposures += r.streamExposures
            out.lateClicks += r.lateClicks
            out.lateExposures += r.lateExposures
            if r.pricedAs == nil { unpriced.insert(r.category) } else { out.feeMicro[r.currency, default: 0] &+= r.feeMicro }
            for (metric, b, s, l) in [("clicks", r.clicks, r.streamClicks, r.lateClicks),
                                      ("exposures", r.exposures, r.streamExposures, r.lateExposures)] {
                let d = b - s
                let within = Double(min(abs(d), abs(d - l))) <= options.tolerance * Double(max(b, 1))
                if !within {
                    out.mismatchesTotal += 1
                    out.ok = false
                    if out.mismatches.count < options.maxFindings {
                        out.mismatches.append(SettlementMismatch(contentId: r.contentId, metric: metric, batch: b, stream: s, late: l))
                    }
                }
            }
        }
        out.unpricedCategories = unpriced.sorted()
        out.top = Array(rows.sorted { ($0.feeMicro, $0.clicks) > ($1.feeMicro, $1.clicks) }.prefix(options.top))
        return out
    }

    /// CSV with a header row; money as decimals with 6 places.
    public static func csv(_ rows: [SettlementRow]) -> String {
        var out = "date,content_id,category,distinct_clickers,clicks,exposures,ctr,priced_as,price_per_click,price_per_mille,fee,currency,stream_clicks,stream_exposures,late_clicks,late_exposures\n"
        for r in rows {
            let fields: [String] = [
                r.date, r.contentId, r.category, "\(r.distinctClickers)", "\(r.clicks)", "\(r.exposures)",
                r.ctr.map { formatRatio($0) } ?? "", r.pricedAs ?? "", PricingCSV.format(micro: r.pricePerClickMicro),
                PricingCSV.format(micro: r.pricePerMilleMicro), PricingCSV.format(micro: r.feeMicro), r.currency,
                "\(r.streamClicks)", "\(r.streamExposures)", "\(r.lateClicks)", "\(r.lateExposures)",
            ]
            out += fields.map(csvField).joined(separator: ",") + "\n"
        }
        return out
    }

    static func csvField(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// A ratio with 6 decimals, without Foundation's locale-dependent formatting.
func formatRatio(_ v: Double) -> String {
    let scaled = Int64((v * 1_000_000).rounded())
    return PricingCSV.format(micro: scaled)
}

extension Settlement {
    /// The settlement of the scanned day, with the stream's numbers read from `table`.
    public static func rows(scan: DayScan, table: any DWSTable, prices: [CategoryPrice]) throws -> [SettlementRow] {
        var stream: [UInt64: Metrics] = [:]
        do {
            try table.rows(from: scan.day.startMs, to: scan.day.endMs) { row in
                let offset = row.minute - scan.day.startMs
                guard offset % 60_000 == 0 else { return }
                let (c, _) = scan.internContent(row.contentId)
                var m = Metrics()
                m[.click] = row.click
                m[.expose] = row.expose
                stream[BatchDay.rowKey(Int(offset / 60_000), c)] = m
            }
        } catch {
            throw ReconcileError.source("dws_minute: \(error)")
        }
        return rows(scan: scan, stream: stream, prices: prices)
    }
}
