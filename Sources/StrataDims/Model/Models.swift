/// One content item's dimensions: a row of `content_dim`.
///
/// JSON (Codable and the Redis value) uses the snake_case column names; the DWM/DWS `content`
/// object is the subset `title, category, author_id, region` (see ``DimJSON/dwmContentObject(_:)``).
public struct ContentDim: Sendable, Equatable, Hashable, Codable {
    public var contentId: String
    public var title: String
    public var category: String
    public var authorId: String
    public var region: String
    public var status: String
    /// Epoch milliseconds.
    public var publishTs: Int64

    public init(contentId: String, title: String, category: String, authorId: String,
                region: String, status: String, publishTs: Int64) {
        self.contentId = contentId
        self.title = title
        self.category = category
        self.authorId = authorId
        self.region = region
        self.status = status
        self.publishTs = publishTs
    }

    enum CodingKeys: String, CodingKey {
        case contentId = "content_id", title, category, authorId = "author_id", region, status
        case publishTs = "publish_ts"
    }
}

/// One user's profile: a row of `user_dim`. JSON keys are the snake_case column names; the DWM
/// `user` object is the subset `gender, age_band, province, city_tier`.
public struct UserDim: Sendable, Equatable, Hashable, Codable {
    public var userId: String
    public var gender: String
    public var ageBand: String
    public var province: String
    /// 1 (largest cities) … 5.
    public var cityTier: Int

    public init(userId: String, gender: String, ageBand: String, province: String, cityTier: Int) {
        self.userId = userId
        self.gender = gender
        self.ageBand = ageBand
        self.province = province
        self.cityTier = cityTier
    }

    enum CodingKeys: String, CodingKey {
        case userId = "user_id", gender, ageBand = "age_band", province, cityTier = "city_tier"
    }
}
