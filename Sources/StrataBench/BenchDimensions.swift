import StrataCLI
import StrataDims
import StrataGen

/// The dimensions of the benchmarks' workloads (contents `c%08d`, users `u%09d`) written straight
/// into a fresh SQLite store for the `strata run` child to read (no changelog: the child builds its
/// valid-ID filter from the store when it starts).
enum BenchDimensions {
    static func load(storePath: String, contents: Int, users: Int) throws {
        let store = try DimensionStoreFactory.open("sqlite:" + storePath)
        try store.migrate()
        let gen = DimensionGenerator(contents: contents, users: users, seed: 11)
        try store.upsert(contents: gen.allContents())
        var progress = Progress()
        for start in stride(from: 0, to: users, by: 20_000) {
            try store.upsert(users: (start..<min(start + 20_000, users)).map(gen.user))
            progress.update("loading users: \(min(start + 20_000, users))/\(users)")
        }
        progress.finish()
    }
}
