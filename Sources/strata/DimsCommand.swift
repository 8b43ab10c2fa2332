import ArgumentParser
import Foundation
import StrataCore
import StrataDims
import StrataJobs

struct DimsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dims",
        abstract: "Write dimensions: the store first, then dim.changelog (dimsync applies it to Redis and the filters).",
        subcommands: [Load.self, Put.self])

    struct Load: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load content dimensions and/or user profiles from CSV files with a header row.",
            discussion: """
            Columns: content_id,title,category,author_id,region,status,publish_ts and
            user_id,gender,age_band,province,city_tier (any order). A bad row fails the load with its
            line number before anything is written.
            """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "Content dimensions CSV.") var content: String?
        @Option(help: "User profiles CSV.") var users: String?
        @Option(help: "Dimension store: sqlite:PATH or postgres://user:pass@host:port/db (env STRATA_STORE).") var store: String?
        @Option(help: "Prefix for every topic name.") var topicPrefix = ""

        func validate() throws { if content == nil && users == nil { throw ValidationError("give --content and/or --users") } }

        func run() throws {
            let config = try global.resolve()
            let contents = try content.map { try DimensionCSV.readContents($0) } ?? []
            let profiles = try users.map { try DimensionCSV.readUsers($0) } ?? []
            try writeDimensions(config: config, storeAddress: store, topicPrefix: topicPrefix, contents: contents, users: profiles)
        }
    }

    struct Put: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upsert one content or user, e.g. strata dims put content c00000001 title='Hello' category=game region=Guangdong.",
            discussion: "Fields not given keep their stored value (or are empty for a new row).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "content or user") var kind: String
        @Argument(help: "The id (c%08d for contents).") var id: String
        @Argument(help: "field=value pairs.") var fields: [String] = []
        @Option(help: "Dimension store (env STRATA_STORE).") var store: String?
        @Option(help: "Prefix for every topic name.") var topicPrefix = ""

        func run() throws {
            let config = try global.resolve()
            var fieldValues: [String: String] = [:]
            for pair in fields {
                guard let eq = pair.firstIndex(of: "=") else { throw ValidationError("expected field=value, got \(pair)") }
                fieldValues[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
            }
            let dimensionStore = try DimensionStoreFactory.open(store ?? config.store)
            try dimensionStore.migrate()
            switch kind {
            case "content":
                var content = try dimensionStore.contents([id])[id] ?? ContentDim(contentId: id, title: "", category: "", authorId: "", region: "", status: "", publishTs: 0)
                for (field, value) in fieldValues {
                    switch field {
                    case "title": content.title = value
                    case "category": content.category = value
                    case "author_id": content.authorId = value
                    case "region": content.region = value
                    case "status": content.status = value
                    case "publish_ts": guard let parsed = Int64(value) else { throw ValidationError("publish_ts must be epoch ms") }; content.publishTs = parsed
                    default: throw ValidationError("unknown content field \(field); fields: \(DimensionCSV.contentColumns.dropFirst().joined(separator: ", "))")
                    }
                }
                try writeDimensions(config: config, storeAddress: store, topicPrefix: topicPrefix, contents: [content], users: [])
            case "user":
                var user = try dimensionStore.users([id])[id] ?? UserDim(userId: id, gender: "", ageBand: "", province: "", cityTier: 0)
                for (field, value) in fieldValues {
                    switch field {
                    case "gender": user.gender = value
                    case "age_band": user.ageBand = value
                    case "province": user.province = value
                    case "city_tier": guard let parsed = Int(value) else { throw ValidationError("city_tier must be an integer") }; user.cityTier = parsed
                    default: throw ValidationError("unknown user field \(field); fields: \(DimensionCSV.userColumns.dropFirst().joined(separator: ", "))")
                    }
                }
                try writeDimensions(config: config, storeAddress: store, topicPrefix: topicPrefix, contents: [], users: [user])
            default:
                throw ValidationError("kind must be content or user")
            }
        }
    }
}

func writeDimensions(config: StrataConfig, storeAddress: String?, topicPrefix: String, contents: [ContentDim], users: [UserDim]) throws {
    let store = try DimensionStoreFactory.open(storeAddress ?? config.store)
    try store.migrate()
    let writer = try DimensionWriter(store: store, brokers: config.brokers, kafka: config.kafka, topicPrefix: topicPrefix)
    var progress = Progress()
    let total = contents.count + users.count
    try writer.write(contents: contents, users: users) { done in progress.update("dimensions written \(done)/\(total)") }
    progress.finish()
    stderrLine("wrote \(contents.count) contents and \(users.count) users to \(storeAddress ?? config.store) and \(topicPrefix)\(Topology.dimChangelog)")
}
