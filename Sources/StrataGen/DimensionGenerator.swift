import Foundation
import StrataCore
public import StrataDims

/// Deterministic synthetic dimensions for the generated workload: content `i` has id `c%08d` and
/// user `i` has id `u%09d` (the same ids `EventWorkload` draws events from), so every generated
/// event with a known id finds its dimensions, and the generator's unknown ids (`c9xxxxxxx`) do not.
///
/// Each row depends only on (seed, index), so a row can be regenerated without the others.
public struct DimensionGenerator: Sendable {
    public let contents: Int
    public let users: Int
    public let seed: UInt64
    /// Publish times fall in the two years before this instant (EventWorkload's default start).
    public static let referenceMs: Int64 = 1_795_219_200_000

    public init(contents: Int, users: Int, seed: UInt64 = 42) {
        precondition(contents >= 0 && contents <= 99_999_999, "contents must fit c%08d")
        precondition(users >= 0 && users <= 999_999_999, "users must fit u%09d")
        self.contents = contents
        self.users = users
        self.seed = seed
    }

    public static func contentId(_ i: Int) -> String { "c" + padded(i, 8) }
    public static func userId(_ i: Int) -> String { "u" + padded(i, 9) }
    public static func authorId(_ i: Int) -> String { "a" + padded(i, 6) }

    public func allContents() -> [ContentDim] { (0..<contents).map(content) }
    public func allUsers() -> [UserDim] { (0..<users).map(user) }

    public func content(_ i: Int) -> ContentDim {
        var r = Rng(seed: seed, salt: 0xC0, index: i)
        let category = r.pick(Self.categories)
        let topics = Self.topics[category] ?? ["stories"]
        let topic = r.pick(topics)
        let template = r.pick(Self.titleTemplates)
        let title = template.replacingOccurrences(of: "{t}", with: topic).replacingOccurrences(of: "{n}", with: String(1 + r.below(99)))
        let authors = max(1, min(999_999, contents / 25))
        // A few prolific authors: squaring a uniform draw skews toward low indexes.
        let u = r.unit()
        let author = min(authors - 1, Int(u * u * Double(authors)))
        let status = r.weighted(Self.statuses)
        let age = Int64(r.below(730 * 24 * 3600)) * 1000 + Int64(r.below(1000))
        return ContentDim(contentId: Self.contentId(i), title: title, category: category, authorId: Self.authorId(author),
                          region: r.weighted(Self.provinces), status: status, publishTs: Self.referenceMs - 3_600_000 - age)
    }

    public func user(_ i: Int) -> UserDim {
        var r = Rng(seed: seed, salt: 0x05E8, index: i)
        let province = r.weighted(Self.provinces)
        var tier = Int(r.weighted(Self.cityTiers))!
        if Self.municipalities.contains(province) { tier = r.unit() < 0.7 ? 1 : 2 }
        return UserDim(userId: Self.userId(i), gender: r.unit() < 0.52 ? "m" : "f", ageBand: r.weighted(Self.ageBands),
                       province: province, cityTier: tier)
    }

    // MARK: Vocabulary

    public static let categories = ["game", "news", "sports", "music", "food", "tech", "travel", "fashion",
                                    "finance", "education", "comedy", "auto", "health", "film", "pets", "parenting"]

    static let topics: [String: [String]] = [
        "game": ["Honor of Kings", "Genshin Impact", "mobile esports", "speedruns", "indie games", "League finals"],
        "news": ["city transit", "the housing market", "weather alerts", "local elections", "new rail lines"],
        "sports": ["CBA playoffs", "the Super League", "marathon training", "table tennis", "badminton"],
        "music": ["Mandopop", "Cantopop classics", "guzheng covers", "live concerts", "new albums"],
        "food": ["Sichuan hotpot", "dim sum", "street food", "Cantonese roast goose", "noodle shops"],
        "tech": ["smartphones", "electric cars", "AI assistants", "foldable screens", "5G"],
        "travel": ["Guilin", "Yunnan villages", "Hainan beaches", "the Silk Road", "Harbin ice festival"],
        "fashion": ["hanfu", "streetwear", "spring trends", "sneakers", "skincare"],
        "finance": ["index funds", "the yuan", "savings", "mortgage rates", "startups"],
        "education": ["gaokao", "English practice", "coding for kids", "study abroad", "math tricks"],
        "comedy": ["crosstalk", "sketches", "office life", "family dinners", "pranks"],
        "auto": ["EV range", "road trips", "SUVs", "charging stations", "used cars"],
        "health": ["sleep", "tai chi", "running", "traditional medicine", "desk stretches"],
        "film": ["new releases", "box office", "classic films", "documentaries", "TV dramas"],
        "pets": ["cats", "corgis", "aquariums", "pet food", "rescue dogs"],
        "parenting": ["newborns", "school lunches", "bedtime stories", "toddler games", "homework"],
    ]

    // Commas and quotes on purpose: real titles have them, and CSV round trips must survive them.
    static let titleTemplates = ["Top {n} moments in {t}", "{t}: what you need to know", "Why {t} matters, explained",
                                 "{t} highlights #{n}", "\"{t}\", reviewed", "A day with {t}", "{t} in {n} minutes",
                                 "The truth about {t}", "{t}, part {n}", "Beginner's guide to {t}"]

    static let statuses: [(String, Double)] = [("published", 0.92), ("offline", 0.04), ("review", 0.03), ("draft", 0.01)]

    /// Provinces and municipalities of mainland China, weighted by population (millions).
    public static let provinces: [(String, Double)] = [
        ("Guangdong", 126), ("Shandong", 101), ("Henan", 99), ("Jiangsu", 85), ("Sichuan", 84), ("Hebei", 75),
        ("Hunan", 66), ("Zhejiang", 65), ("Anhui", 61), ("Hubei", 58), ("Guangxi", 50), ("Yunnan", 47),
        ("Jiangxi", 45), ("Liaoning", 43), ("Fujian", 41), ("Shaanxi", 40), ("Guizhou", 39), ("Shanxi", 35),
        ("Chongqing", 32), ("Heilongjiang", 32), ("Xinjiang", 26), ("Gansu", 25), ("Shanghai", 25),
        ("Inner Mongolia", 24), ("Jilin", 24), ("Beijing", 22), ("Tianjin", 14), ("Hainan", 10), ("Ningxia", 7),
        ("Qinghai", 6), ("Tibet", 4),
    ]
    static let municipalities: Set<String> = ["Beijing", "Shanghai", "Tianjin", "Chongqing"]
    public static let ageBands: [(String, Double)] = [("<18", 8), ("18-24", 22), ("25-30", 22), ("31-40", 24), ("41-50", 14), ("50+", 10)]
    static let cityTiers: [(String, Double)] = [("1", 12), ("2", 25), ("3", 28), ("4", 20), ("5", 15)]

    private static func padded(_ i: Int, _ width: Int) -> String {
        let s = String(i)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// SplitMix64 seeded from (seed, salt, index): independent streams per row.
    private struct Rng {
        var generator: SplitMix64

        init(seed: UInt64, salt: UInt64, index: Int) {
            generator = SplitMix64(state: SplitMix64.mix(
                seed ^ SplitMix64.mix(salt &+ UInt64(truncatingIfNeeded: index) &* SplitMix64.gamma)))
        }

        mutating func next() -> UInt64 { generator.next() }

        mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
        mutating func below(_ n: Int) -> Int { Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(n)).high) }
        mutating func pick<T>(_ xs: [T]) -> T { xs[below(xs.count)] }

        mutating func weighted(_ xs: [(String, Double)]) -> String {
            let total = xs.reduce(0) { $0 + $1.1 }
            var u = unit() * total
            for (v, w) in xs {
                if u < w { return v }
                u -= w
            }
            return xs[xs.count - 1].0
        }
    }
}
